//! UIA fallback pages (spec: client-server-api/#fallback): a small HTML form
//! per stage Hearth offers, for clients that do not know the stage. On
//! success the page tells the client with `window.onAuthDone` or a
//! `postMessage("authDone")` to its opener, exactly as the spec's snippet.

use crate::account::{self, DUMMY, PASSWORD, REGISTRATION_TOKEN};
use crate::api::{Reply, Request, html, parse_query};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};

const DONE_SCRIPT: &str = r#"<script>
if (window.onAuthDone) {
    window.onAuthDone();
} else if (window.opener && window.opener.postMessage) {
    window.opener.postMessage("authDone", "*");
}
</script>"#;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{t}</title><style>body{{font-family:sans-serif;\
         max-width:28em;margin:3em auto;padding:0 1em}}input,button{{font-size:1em;padding:.4em}}\
         </style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

fn form(session: &str, fields: &str, error: Option<&str>) -> String {
    let err =
        error.map(|e| format!("<p style=\"color:#b00\">{}</p>", escape(e))).unwrap_or_default();
    format!(
        "{err}<form method=\"post\"><input type=\"hidden\" name=\"session\" value=\"{}\">{fields}\
         <p><button type=\"submit\">Continue</button></p></form>",
        escape(session)
    )
}

/// `GET|POST /_matrix/client/v3/auth/{authType}/fallback/web?session=…`
pub async fn auth_fallback(
    app: &App,
    req: &Request,
    stage: &str,
    submit: bool,
) -> Result<Reply, MatrixError> {
    let form_fields = if submit {
        parse_query(
            std::str::from_utf8(&req.body)
                .map_err(|_| MatrixError::bad_json("form is not UTF-8"))?,
        )?
    } else {
        Vec::new()
    };
    let field = |k: &str| form_fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let session = field("session")
        .or_else(|| req.query("session").map(str::to_owned))
        .ok_or_else(|| MatrixError::missing_param("session is required"))?;
    if ![DUMMY, PASSWORD, REGISTRATION_TOKEN].contains(&stage) {
        return Err(MatrixError::not_found(format!("No fallback for authentication type {stage}")));
    }
    let described = app.uia.borrow().describe(&session, stage);
    let Some((offered, purpose)) = described else {
        return Ok(html(
            404,
            page(
                "Unknown session",
                "<p>This sign-in session is unknown or has expired. Go back to your app and try again.</p>",
            ),
        ));
    };
    if !offered {
        return Err(MatrixError::forbidden(format!("This session does not offer {stage}")));
    }
    let fields = match stage {
        PASSWORD => {
            "<p><label>Password <input type=\"password\" name=\"password\" autofocus></label></p>"
        }
        REGISTRATION_TOKEN => {
            "<p><label>Registration token <input name=\"token\" autofocus></label></p>"
        }
        _ => "<p>Confirm to continue.</p>",
    };
    if !submit {
        return Ok(html(200, page("Confirm it's you", &form(&session, fields, None))));
    }
    let result: Result<(Option<String>, Option<String>), MatrixError> = match stage {
        DUMMY => Ok((None, None)),
        REGISTRATION_TOKEN => {
            let token = field("token").unwrap_or_default();
            if account::registration_token_is_valid(&app.store, &token)? {
                Ok((None, Some(token)))
            } else {
                Err(MatrixError::new(
                    ErrorKind::Unauthorized,
                    "That registration token is not valid",
                ))
            }
        }
        _ => {
            // The purpose records the acting user: "password:alice", "delete_device:alice:…".
            let user = purpose.split(':').nth(1).filter(|u| *u != "?").map(str::to_owned);
            match user {
                Some(u) => {
                    let pw = field("password").unwrap_or_default();
                    account::check_password(&app.password_check(), &u, &pw, req.remote)
                        .await
                        .map(|()| (Some(u), None))
                }
                None => Err(MatrixError::forbidden("Sign in from your app to use this page")),
            }
        }
    };
    match result {
        Ok((user, token)) => {
            app.uia.borrow_mut().complete_stage(&session, stage, user, token);
            Ok(html(
                200,
                page(
                    "Done",
                    &format!("<p>Thank you. You can return to your app.</p>{DONE_SCRIPT}"),
                ),
            ))
        }
        Err(e) => {
            Ok(html(401, page("Confirm it's you", &form(&session, fields, Some(&e.message)))))
        }
    }
}
