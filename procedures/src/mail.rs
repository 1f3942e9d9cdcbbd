//! Outgoing mail (password-reset links).
//!
//! Two deliveries behind one [`Mailer`] trait: [`FileOutbox`] writes each
//! message as an RFC 5322 `.eml` file (the default, so a fresh install works
//! without an SMTP server and tests can read the mail), and [`SmtpMailer`]
//! sends through a real SMTP server configured by `SMTP_URL`. Both build the
//! message with lettre, so headers are properly encoded either way.
//!
//! Procedures never call a [`Mailer`] themselves: they queue mail in the
//! database ([`crate::outbox`]), and the outbox worker sends it.

use std::path::{Path, PathBuf};

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use url::Url;

/// The sender used when none is configured (`MAIL_FROM` unset).
pub const DEFAULT_FROM: &str = "gatehouse@localhost";

/// One plain-text mail to one recipient: all Gatehouse ever sends.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Recipient address (`user@example.com` or `Name <user@example.com>`).
    pub to: String,
    /// Subject line (any Unicode; encoded as needed).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// Why a mail could not be built or delivered. Messages hold no mail
/// content (reset tokens are secrets); they are for logs, not for clients.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The sender or recipient is not a valid mail address.
    #[error("invalid {role} mail address")]
    InvalidAddress {
        /// `"sender"` or `"recipient"`.
        role: &'static str,
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be assembled.
    #[error("could not build the mail message: {0}")]
    Build(#[from] lettre::error::Error),
    /// Writing to the outbox directory failed.
    #[error("could not write the mail to the outbox: {0}")]
    Io(#[from] std::io::Error),
    /// `SMTP_URL` is not a usable SMTP URL.
    #[error("invalid SMTP URL: {0}")]
    InvalidSmtpUrl(#[source] lettre::transport::smtp::Error),
    /// The SMTP server refused the message or could not be reached.
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// The SMTP transport keeps a connection pool that needs a running tokio
    /// runtime; it was created outside one.
    #[error("the SMTP mailer must be created inside a tokio runtime")]
    NoRuntime,
}

/// Delivers mails. Object-safe so the service can hold an `Arc<dyn Mailer>`
/// chosen at start-up (outbox or SMTP) and tests can plug in their own.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers one mail; returns once it is written or accepted by the server.
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
}

/// Builds the reset link: `base` (`GATEHOUSE_RESET_URL`) with `token` and
/// `email` appended as query parameters after any it already has. `Url`
/// keeps a `#fragment` last and form-encodes the values, so `+`, `&`, `=`,
/// `#` and `@` in them cannot change what the link says.
pub fn reset_link(base: &Url, token: &str, email: &str) -> String {
    let mut link = base.clone();
    // A base ending in `&` (`?lang=es&`) already has its separator; `Url`
    // would add a second one.
    if let Some(query) = link.query().and_then(|q| q.strip_suffix('&')) {
        let query = query.to_owned();
        link.set_query(Some(&query));
    }
    link.query_pairs_mut()
        .append_pair("token", token)
        .append_pair("email", email);
    link.into()
}

/// The password-reset mail of `docs/api.md#authrequestpasswordreset`: addressed to the user, with the reset
/// link (`token=` and `email=` query parameters) and, on a line of its own,
/// `Token: <token>` for people (and tests) who paste the token by hand.
pub fn password_reset_mail(to: &str, reset_url: &Url, token: &str) -> Mail {
    let link = reset_link(reset_url, token, to);
    let text = format!(
        "Hello,\n\
         \n\
         Someone (hopefully you) asked to reset the password of your Gatehouse account.\n\
         To choose a new password, open this link within 60 minutes:\n\
         \n\
         {link}\n\
         \n\
         or enter this token on the password reset page:\n\
         \n\
         Token: {token}\n\
         \n\
         The link works only once. If you did not ask for a new password, ignore\n\
         this mail: your password stays as it is.\n\
         \n\
         -- \n\
         Gatehouse\n"
    );
    Mail {
        to: to.to_owned(),
        subject: "Reset your Gatehouse password".to_owned(),
        text,
    }
}

fn parse_mailbox(address: &str, role: &'static str) -> Result<Mailbox, MailError> {
    address
        .trim()
        .parse()
        .map_err(|source| MailError::InvalidAddress { role, source })
}

/// How the body may be encoded on its way out.
#[derive(Clone, Copy)]
enum Transfer {
    /// A file: 8bit is fine and keeps every line greppable.
    File,
    /// SMTP: no 8bit, which would need the server's 8BITMIME.
    Smtp,
}

/// The longest line RFC 5322 allows (excluding CRLF).
const MAX_LINE_BYTES: usize = 998;

/// Encodes the body so that, whenever the rules allow, it goes out verbatim:
/// the reset link is one long line, and lettre's own chooser would switch to
/// quoted-printable for any line over 76 characters, splitting the link and
/// the `Token:` line with soft line breaks that break grepping the file and
/// copy-pasting from plain mail readers. RFC 5322 allows lines up to 998
/// bytes, so ASCII text within that is sent as 7bit; other UTF-8 text as 8bit
/// to a file; anything else gets lettre's choice (quoted-printable/base64).
fn encode_body(text: &str, transfer: Transfer) -> Body {
    let lf = text.replace("\r\n", "\n");
    let verbatim_ok = !lf.contains(['\r', '\0']) && lf.lines().all(|l| l.len() <= MAX_LINE_BYTES);
    let crlf = lf.replace('\n', "\r\n");
    match (verbatim_ok, crlf.is_ascii(), transfer) {
        (true, true, _) => {
            Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
        }
        (true, false, Transfer::File) => {
            Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::EightBit)
        }
        // SMTP: 8bit needs the server's 8BITMIME, so let lettre pick a safe
        // encoding for non-ASCII bodies.
        _ => Body::new(crlf),
    }
}

/// Builds a real RFC 5322 message (Date, Message-ID, MIME headers, encoded
/// non-ASCII header words) from a [`Mail`].
fn build_message(mail: Mail, from: &Mailbox, transfer: Transfer) -> Result<Message, MailError> {
    let to = parse_mailbox(&mail.to, "recipient")?;
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject)
        .message_id(None)
        .header(ContentType::TEXT_PLAIN)
        .body(encode_body(&mail.text, transfer))?)
}

/// Writes each mail as one `.eml` file in a directory: the default delivery
/// (`GATEHOUSE_OUTBOX_DIR`, `./data/outbox/`), readable by people and tests.
///
/// Files appear atomically (written under a temporary name, synced, then
/// renamed), so a reader never sees half a message, and their names sort in
/// the order they were sent. They hold live reset tokens, so on Unix they are
/// readable by their owner only.
#[derive(Debug, Clone)]
pub struct FileOutbox {
    dir: PathBuf,
    from: Mailbox,
}

impl FileOutbox {
    /// An outbox in `dir` (created on first send) sending from
    /// [`DEFAULT_FROM`].
    pub fn new(dir: PathBuf) -> Self {
        let from = Mailbox::new(
            None,
            lettre::Address::new("gatehouse", "localhost")
                .unwrap_or_else(|_| unreachable!("gatehouse@localhost is a valid address")),
        );
        Self { dir, from }
    }

    /// Uses `from` (`MAIL_FROM`) as the sender instead of the default.
    pub fn with_from(mut self, from: &str) -> Result<Self, MailError> {
        self.from = parse_mailbox(from, "sender")?;
        Ok(self)
    }

    /// The directory the messages go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn write_atomically(&self, bytes: &[u8]) -> Result<PathBuf, MailError> {
        tokio::fs::create_dir_all(&self.dir).await?;
        // UUIDv7 starts with the time, so names sort by sending order.
        let id = uuid::Uuid::now_v7();
        let path = self.dir.join(format!("{id}.eml"));
        let tmp = self.dir.join(format!(".{id}.eml.tmp"));
        let written = async {
            let mut options = tokio::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            options.mode(0o600);
            let mut file = options.open(&tmp).await?;
            file.write_all(bytes).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(err) = written {
            // Best effort: do not leave a partial temp file behind.
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(err.into());
        }
        Ok(path)
    }
}

#[async_trait::async_trait]
impl Mailer for FileOutbox {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = build_message(mail, &self.from, Transfer::File)?;
        let path = self.write_atomically(&message.formatted()).await?;
        tracing::info!(path = %path.display(), "mail written to the outbox");
        Ok(())
    }
}

/// Sends mail through an SMTP server (`SMTP_URL`), reusing connections from
/// lettre's pool.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    /// Leaves the transport out: it holds the SMTP credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Builds a mailer from an SMTP URL as lettre understands it:
    /// `smtp://user:pass@host:587` (plain), `smtp://…?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (TLS); `from` is the sender
    /// (`MAIL_FROM`). No connection is made until the first mail, so a bad
    /// server shows up then, but a bad URL or sender is refused here, at
    /// start-up. Must run inside a tokio runtime (the pool spawns a task).
    pub fn from_url(url: &str, from: &str) -> Result<Self, MailError> {
        let from = parse_mailbox(from, "sender")?;
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(MailError::InvalidSmtpUrl)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MailError::NoRuntime);
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = build_message(mail, &self.from, Transfer::Smtp)?;
        self.transport
            .send(message)
            .await
            .map_err(MailError::Smtp)?;
        tracing::info!("mail accepted by the SMTP server");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    fn eml_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn reset_link_appends_query_parameters() {
        // The default base: byte for byte the link mailed before `Url`.
        assert_eq!(
            reset_link(
                &url("http://localhost:3000/reset-password"),
                "abc123",
                "ann@example.com"
            ),
            "http://localhost:3000/reset-password?token=abc123&email=ann%40example.com"
        );
        // A base with a query keeps it and gets `&`.
        assert_eq!(
            reset_link(
                &url("https://app.example/reset?lang=es"),
                "t",
                "a+b@example.com"
            ),
            "https://app.example/reset?lang=es&token=t&email=a%2Bb%40example.com"
        );
        assert_eq!(
            reset_link(&url("https://app.example/reset?lang=es&"), "t", "a@b.c"),
            "https://app.example/reset?lang=es&token=t&email=a%40b.c"
        );
        assert_eq!(
            reset_link(&url("https://app.example/reset?"), "t", "a@b.c"),
            "https://app.example/reset?token=t&email=a%40b.c"
        );
        // The fragment stays last; reserved characters in values are encoded.
        assert_eq!(
            reset_link(&url("https://app.example/#/reset"), "t/+=", "a@b.c"),
            "https://app.example/?token=t%2F%2B%3D&email=a%40b.c#/reset"
        );
        assert_eq!(
            reset_link(&url("https://app.example/r?x=1#/reset"), "t&u#v", "a@b.c"),
            "https://app.example/r?x=1&token=t%26u%23v&email=a%40b.c#/reset"
        );
    }

    #[test]
    fn reset_mail_holds_link_and_token_line() {
        let mail = password_reset_mail(
            "ann@example.com",
            &url("http://localhost:3000/reset-password"),
            "tok-123_abc",
        );
        assert_eq!(mail.to, "ann@example.com");
        assert!(mail.subject.contains("Reset"));
        assert!(
            mail.text.lines().any(|l| l == "Token: tok-123_abc"),
            "{}",
            mail.text
        );
        assert!(mail.text.lines().any(|l| {
            l == "http://localhost:3000/reset-password?token=tok-123_abc&email=ann%40example.com"
        }));
    }

    #[tokio::test]
    async fn file_outbox_writes_one_greppable_eml() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested").join("outbox");
        let outbox = FileOutbox::new(dir.clone());
        let token = "Zx9_q-LONGtokenVALUE0123456789abcdefghijklmnopqrstuvwxyz";
        let mail = password_reset_mail(
            "Ann.Example+tag@example.com",
            &url("http://localhost:3000/reset-password"),
            token,
        );
        outbox.send(mail).await.unwrap();

        let files = eml_files(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].extension().unwrap(), "eml");
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        let (headers, body) = raw.split_once("\r\n\r\n").unwrap();
        assert!(
            headers
                .lines()
                .any(|l| l == "To: Ann.Example+tag@example.com"),
            "{headers}"
        );
        assert!(
            headers.lines().any(|l| l == "From: gatehouse@localhost"),
            "{headers}"
        );
        assert!(
            headers
                .lines()
                .any(|l| l == "Subject: Reset your Gatehouse password")
        );
        assert!(headers.lines().any(|l| l.starts_with("Date: ")));
        assert!(headers.lines().any(|l| l.starts_with("Message-ID: ")));
        assert!(
            headers
                .lines()
                .any(|l| l == "Content-Transfer-Encoding: 7bit"),
            "{headers}"
        );
        // The token line and the link survive verbatim (no soft line breaks).
        assert!(
            body.lines()
                .any(|l| l.trim_end() == format!("Token: {token}")),
            "{body}"
        );
        let link = format!(
            "http://localhost:3000/reset-password?token={token}&email=Ann.Example%2Btag%40example.com"
        );
        assert!(body.lines().any(|l| l.trim_end() == link), "{body}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // A second mail is a second file, sorting after the first.
        let second = password_reset_mail("bob@example.com", &url("http://x/r"), "second");
        outbox.send(second).await.unwrap();
        let files = eml_files(&dir);
        assert_eq!(files.len(), 2);
        assert!(
            std::fs::read_to_string(&files[1])
                .unwrap()
                .contains("Token: second")
        );
    }

    #[tokio::test]
    async fn file_outbox_custom_sender_and_non_ascii_body() {
        let tmp = tempfile::tempdir().unwrap();
        let outbox = FileOutbox::new(tmp.path().to_path_buf())
            .with_from("Gatehouse <no-reply@example.org>")
            .unwrap();
        outbox
            .send(Mail {
                to: "José <jose@example.com>".into(),
                subject: "Restablece tu contraseña".into(),
                text: "Hola José,\n\nToken: ñandú-42\n".into(),
            })
            .await
            .unwrap();
        let files = eml_files(tmp.path());
        assert_eq!(files.len(), 1);
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            raw.contains("From: Gatehouse <no-reply@example.org>"),
            "{raw}"
        );
        assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "{raw}");
        assert!(
            raw.lines().any(|l| l.trim_end() == "Token: ñandú-42"),
            "{raw}"
        );
        // Non-ASCII headers are RFC 2047-encoded, not raw UTF-8.
        let headers = raw.split_once("\r\n\r\n").unwrap().0;
        assert!(headers.is_ascii(), "{headers}");
    }

    #[tokio::test]
    async fn bad_addresses_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            FileOutbox::new(tmp.path().into()).with_from("not an address"),
            Err(MailError::InvalidAddress { role: "sender", .. })
        ));
        let outbox = FileOutbox::new(tmp.path().into());
        let res = outbox
            .send(password_reset_mail("nobody", &url("http://x/r"), "t"))
            .await;
        assert!(matches!(
            res,
            Err(MailError::InvalidAddress {
                role: "recipient",
                ..
            })
        ));
        assert!(eml_files(tmp.path()).is_empty());
    }

    #[tokio::test]
    async fn file_outbox_reports_unwritable_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let outbox = FileOutbox::new(blocker.join("outbox"));
        let res = outbox
            .send(password_reset_mail("a@b.c", &url("http://x/r"), "t"))
            .await;
        assert!(matches!(res, Err(MailError::Io(_))), "{res:?}");
    }

    #[tokio::test]
    async fn smtp_url_parsing() {
        assert!(SmtpMailer::from_url("smtp://user:pass@host:587", "gatehouse@example.com").is_ok());
        assert!(SmtpMailer::from_url("smtps://user:pass@host", "gatehouse@example.com").is_ok());
        assert!(
            SmtpMailer::from_url("smtp://host:587?tls=required", "Gatehouse <g@example.com>")
                .is_ok()
        );
        for bad in [
            "not a url",
            "http://host:25",
            "smtp://",
            "smtp://host?tls=sometimes",
        ] {
            let res = SmtpMailer::from_url(bad, "gatehouse@example.com");
            assert!(
                matches!(res, Err(MailError::InvalidSmtpUrl(_))),
                "{bad}: {res:?}"
            );
        }
        assert!(matches!(
            SmtpMailer::from_url("smtp://host:587", "nope"),
            Err(MailError::InvalidAddress { role: "sender", .. })
        ));
    }

    #[test]
    fn smtp_mailer_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            SmtpMailer::from_url("smtp://host:587", "g@example.com"),
            Err(MailError::NoRuntime)
        ));
    }

    /// What the fake server saw.
    #[derive(Debug, Default)]
    struct Session {
        commands: Vec<String>,
        data: String,
    }

    /// A minimal SMTP server on a real TCP socket: enough of RFC 5321 for
    /// lettre to authenticate (AUTH PLAIN) and deliver one message.
    async fn fake_smtp_server(listener: TcpListener) -> Session {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut session = Session::default();
        write
            .write_all(b"220 fake.test ESMTP ready\r\n")
            .await
            .unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            let upper = line.to_ascii_uppercase();
            session.commands.push(line.clone());
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-fake.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("AUTH PLAIN") {
                b"235 2.7.0 Authentication successful\r\n"
            } else if upper.starts_with("MAIL FROM") || upper.starts_with("RCPT TO") {
                b"250 2.1.0 OK\r\n"
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await.unwrap();
                while let Some(data_line) = lines.next_line().await.unwrap() {
                    if data_line == "." {
                        break;
                    }
                    session.data.push_str(&data_line);
                    session.data.push('\n');
                }
                write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                // One message is all this test needs.
                return session;
            } else if upper == "QUIT" {
                b"221 bye\r\n"
            } else {
                b"250 OK\r\n"
            };
            write.write_all(reply).await.unwrap();
        }
        session
    }

    #[tokio::test]
    async fn smtp_mailer_delivers_over_real_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(fake_smtp_server(listener));

        let mailer = SmtpMailer::from_url(
            &format!("smtp://user:pass@127.0.0.1:{port}"),
            "Gatehouse <gatehouse@example.com>",
        )
        .unwrap();
        let token = "smtp-token-0123456789";
        mailer
            .send(password_reset_mail(
                "ann@example.com",
                &url("http://localhost:3000/reset-password"),
                token,
            ))
            .await
            .unwrap();

        let session = server.await.unwrap();
        // base64("\0user\0pass"): credentials came from the URL.
        assert!(
            session
                .commands
                .iter()
                .any(|c| c == "AUTH PLAIN AHVzZXIAcGFzcw=="),
            "{session:?}"
        );
        assert!(
            session
                .commands
                .iter()
                .any(|c| c == "MAIL FROM:<gatehouse@example.com>"),
            "{session:?}"
        );
        assert!(
            session
                .commands
                .iter()
                .any(|c| c == "RCPT TO:<ann@example.com>"),
            "{session:?}"
        );
        assert!(
            session.data.contains("To: ann@example.com\n"),
            "{}",
            session.data
        );
        assert!(
            session.data.lines().any(|l| l == format!("Token: {token}")),
            "{}",
            session.data
        );
    }

    #[tokio::test]
    async fn smtp_mailer_reports_an_unreachable_server() {
        // Bind then drop to get a loopback port nobody listens on.
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let mailer =
            SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), "g@example.com").unwrap();
        let res = mailer
            .send(password_reset_mail("a@b.c", &url("http://x/r"), "t"))
            .await;
        assert!(matches!(res, Err(MailError::Smtp(_))), "{res:?}");
    }
}
