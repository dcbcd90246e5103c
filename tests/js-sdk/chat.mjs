// Hearth driven by matrix-js-sdk, the SDK Element Web is built on: two
// users chat the way Element Web does (lazy-loaded members, threads,
// receipts, typing, edits, presence, scrollback from a new device, search,
// unsigned.membership, v11 redactions live, and a user's own new device
// reaching the first device's Rust crypto).
// Run by run.sh against a fresh server; exits non-zero on the first failure.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
logger.setLevel("warn");
const base = process.argv[2];
const tag = Date.now().toString(36);
const fail = (m) => { console.error("FAIL:", m); process.exit(1); };
const wait = (what, f, ms = 10000) => new Promise((res, rej) => {
  const t0 = Date.now();
  const tick = () => { let v; try { v = f(); } catch (e) { return rej(e); }
    if (v) return res(v); if (Date.now() - t0 > ms) return rej(new Error("timeout: " + what)); setTimeout(tick, 50); };
  tick();
});
async function register(name) {
  const r = await fetch(`${base}/_matrix/client/v3/register`, { method: "POST", body: JSON.stringify({ username: name, password: "pw-" + name + "-1", auth: { type: "m.login.dummy" } }) });
  const j = await r.json(); if (!j.access_token) fail("register " + JSON.stringify(j)); return j;
}
async function client(name, reg) {
  const c = sdk.createClient({ baseUrl: base, accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
  await c.startClient({ lazyLoadMembers: true, initialSyncLimit: 20, threadSupport: true });
  await wait(name + " prepared", () => c.getSyncState() === "PREPARED" || c.getSyncState() === "SYNCING");
  return c;
}
const ar = await register("alice" + tag), br = await register("bob" + tag);
const alice = await client("alice", ar), bob = await client("bob", br);
await alice.setDisplayName("Alice A");
const { room_id } = await alice.createRoom({ name: "Kitchen", invite: [br.user_id], preset: "private_chat" });
await wait("bob invited", () => bob.getRoom(room_id)?.getMyMembership() === "invite");
await bob.joinRoom(room_id);
await wait("bob joined", () => bob.getRoom(room_id)?.getMyMembership() === "join");
const first = await alice.sendTextMessage(room_id, "dinner is ready");
const bobRoom = bob.getRoom(room_id);
await wait("bob sees message", () => bobRoom.getLiveTimeline().getEvents().some(e => e.getId() === first.event_id));
if (bobRoom.name !== "Kitchen") fail("room name on bob's side: " + bobRoom.name);
const ev = bobRoom.getLiveTimeline().getEvents().find(e => e.getId() === first.event_id);
await wait("sender name", () => ev.sender?.name === "Alice A" || bobRoom.getMember(ar.user_id)?.name === "Alice A");
console.log("ok: message, room name, sender display name");
// typing
await alice.sendTyping(room_id, true, 10000);
await wait("typing", () => bobRoom.getMember(ar.user_id)?.typing === true);
console.log("ok: typing");
// receipts
await bob.sendReadReceipt(ev);
const aliceRoom = alice.getRoom(room_id);
await wait("receipt", () => aliceRoom.getUsersReadUpTo(aliceRoom.findEventById(first.event_id)).includes(br.user_id));
console.log("ok: read receipt");
// thread
const reply = await bob.sendMessage(room_id, first.event_id, { msgtype: "m.text", body: "coming!", "m.relates_to": { rel_type: "m.thread", event_id: first.event_id } });
await wait("thread", () => aliceRoom.getThread(first.event_id)?.length >= 1);
console.log("ok: thread, length", aliceRoom.getThread(first.event_id).length);
// reaction + edit
await bob.sendEvent(room_id, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: first.event_id, key: "👍" } });
await alice.sendMessage(room_id, { msgtype: "m.text", body: "* dinner is served", "m.new_content": { msgtype: "m.text", body: "dinner is served" }, "m.relates_to": { rel_type: "m.replace", event_id: first.event_id } });
await wait("edit", () => bobRoom.findEventById(first.event_id)?.getContent()?.body === "dinner is served");
console.log("ok: edit applied on bob's side");
// presence
await wait("presence", () => bob.getUser(ar.user_id)?.presence === "online");
console.log("ok: presence");
// history for a fresh device with lazy loading
for (let i = 0; i < 30; i++) await alice.sendTextMessage(room_id, "msg " + i);
const login = await (await fetch(`${base}/_matrix/client/v3/login`, { method: "POST", body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: "bob" + tag }, password: "pw-bob" + tag + "-1" }) })).json();
const bob2 = await client("bob2", login);
const r2 = bob2.getRoom(room_id);
await wait("bob2 room", () => r2 || bob2.getRoom(room_id));
const room2 = bob2.getRoom(room_id);
let n0 = room2.getLiveTimeline().getEvents().length;
await bob2.scrollback(room2, 30);
let n1 = room2.getLiveTimeline().getEvents().length;
if (n1 <= n0) fail(`scrollback gave nothing: ${n0} -> ${n1}`);
const firstAgain = room2.findEventById(first.event_id);
if (!firstAgain) fail("first message not reached by scrollback");
if (firstAgain.sender?.name !== "Alice A") fail("lazy member name after scrollback: " + firstAgain.sender?.name);
console.log(`ok: scrollback ${n0} -> ${n1} events, names resolved`);
// members list (lazy loaded)
await room2.loadMembersIfNeeded();
if (room2.getJoinedMemberCount() !== 2) fail("joined count " + room2.getJoinedMemberCount());
console.log("ok: members");
// unread notifications
// Bob read the first message; since then Alice sent 30 (her edit does not
// notify under the default push rules).
await wait("unread count", () => bobRoom.getUnreadNotificationCount() === 30);
console.log("ok: unread count 30");
// search
const res = await bob.searchRoomEvents({ term: "served" });
if (!res.results.length) fail("search found nothing");
console.log("ok: search", res.results.length);
// unsigned.membership: the reader's membership at each event, which the
// SDK reads to tell "sent before you joined" from other undecryptable
// messages. Bob's new device reaches back past his invite.
const before = () => room2.getLiveTimeline().getEvents().find(e => e.getType() === "m.room.name");
for (let i = 0; i < 3 && !before(); i++) await bob2.scrollback(room2, 30);
if (!before()) fail("the room name event not reached by scrollback");
if (before().getMembershipAtEvent() !== "leave") fail("membership before the invite: " + before().getMembershipAtEvent());
const bobInvite = room2.getLiveTimeline().getEvents().find(e => e.getType() === "m.room.member" && e.getStateKey() === br.user_id && e.getContent().membership === "invite");
if (bobInvite?.getMembershipAtEvent() !== "invite") fail("membership at the invite: " + bobInvite?.getMembershipAtEvent());
if (firstAgain.getMembershipAtEvent() !== "join") fail("membership after joining (history): " + firstAgain.getMembershipAtEvent());
if (ev.getMembershipAtEvent() !== "join") fail("membership after joining (live): " + ev.getMembershipAtEvent());
console.log("ok: unsigned.membership leave/invite/join");
// Redactions in a room version 11 room, where `redacts` sits in `content`:
// the SDK reads the top-level `redacts`, which the server serves too.
const { room_id: r11 } = await alice.createRoom({ room_version: "11", invite: [br.user_id], preset: "private_chat" });
await wait("bob invited to the v11 room", () => bob.getRoom(r11)?.getMyMembership() === "invite");
await bob.joinRoom(r11);
await wait("bob joined the v11 room", () => bob.getRoom(r11)?.getMyMembership() === "join");
const doomed = await alice.sendTextMessage(r11, "delete me");
const liked = await alice.sendTextMessage(r11, "like me");
const bob11 = bob.getRoom(r11), alice11 = alice.getRoom(r11);
await wait("bob sees the v11 messages", () => bob11.findEventById(doomed.event_id) && bob11.findEventById(liked.event_id));
await alice.redactEvent(r11, doomed.event_id);
await wait("the deleted message redacted live at bob", () => bob11.findEventById(doomed.event_id)?.isRedacted());
console.log("ok: v11 redaction applied live");
const thumbs = await bob.sendEvent(r11, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: liked.event_id, key: "👍" } });
const thumbsAtAlice = () => alice11.relations.getChildEventsForEvent(liked.event_id, "m.annotation", "m.reaction")
  ?.getSortedAnnotationsByKey()?.find(([key]) => key === "👍")?.[1].size ?? 0;
await wait("the reaction counted at alice", () => thumbsAtAlice() === 1);
await bob.redactEvent(r11, thumbs.event_id);
await wait("the reaction removal counted at alice", () => thumbsAtAlice() === 0);
console.log("ok: v11 reaction removal drops the count live");
for (const c of [alice, bob, bob2]) c.stopClient();
// A user's own new device: Element Web's crypto (the Rust crypto in wasm)
// learns of it from its own user in device_lists.changed, which is what
// lets the first device accept the new one's verification request.
// The wasm crypto traces at debug level to console.debug; keep the output
// to the checks.
console.debug = () => {};
async function cryptoClient(name, reg) {
  const c = sdk.createClient({ baseUrl: base, accessToken: reg.access_token, userId: reg.user_id, deviceId: reg.device_id });
  await c.initRustCrypto({ useIndexedDB: false });
  await c.startClient({ initialSyncLimit: 1 });
  await wait(name + " prepared", () => c.getSyncState() === "PREPARED" || c.getSyncState() === "SYNCING");
  return c;
}
const cr = await register("carol" + tag);
const carol1 = await cryptoClient("carol1", cr);
const ownDevices = async (c) => (await c.getCrypto().getUserDeviceInfo([cr.user_id])).get(cr.user_id) ?? new Map();
const until = async (what, f, ms = 20000) => {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > ms) fail(what);
    await new Promise((r) => setTimeout(r, 100));
  }
};
// Carol's first device has queried her keys before the second exists, so
// only device_lists.changed can tell it of the second.
await until("carol1 never queried its own keys", async () => (await ownDevices(carol1)).has(cr.device_id));
const carolLogin = await (await fetch(`${base}/_matrix/client/v3/login`, { method: "POST", body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: "carol" + tag }, password: "pw-carol" + tag + "-1" }) })).json();
const carol2 = await cryptoClient("carol2", carolLogin);
await until("carol's first device never learnt of her second", async () => (await ownDevices(carol1)).has(carolLogin.device_id));
console.log("ok: own new device seen by the first device's crypto");
carol1.stopClient(); carol2.stopClient();
console.log("ALL OK");
process.exit(0);
