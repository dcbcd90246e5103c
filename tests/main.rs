//! Integration tests: each starts the real server on `127.0.0.1:0` with a
//! temporary data directory and talks HTTP to it.

// Items here are shared between test modules of one crate.
#![allow(unreachable_pub)]

mod support;

mod accounts;
mod admin_cli;
mod calls;
mod dehydrated;
mod devices;
mod directory;
mod durability;
mod e2ee;
mod events;
mod http;
mod mdns;
mod media;
mod misc;
mod ops;
mod preview;
mod push;
mod quota;
mod relations;
mod rooms;
mod sdk;
mod sdk_sliding;
mod search;
mod served;
mod sliding;
mod sync_filters;
mod tls;
mod uia;
mod userdata;
