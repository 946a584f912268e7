//! TLS to the server: the `--ssl-mode` a run connects with (MySQL client semantics), the driver
//! options that carry it out, and what a TLS failure at connect time means for the person
//! running alterego.
//!
//! Invariants: every connection the tool opens gets its options from [`Tls::ssl_opts`] (through
//! `server::Server`, the one place that builds connection options); VERIFY_CA and
//! VERIFY_IDENTITY trust only the `--ssl-ca` file, never built-in roots; PREFERRED falls back
//! to a plain connection only when the server offers no TLS at all, never after a failed
//! handshake; a TLS failure is explained with what failed and what to do.

use std::path::{Path, PathBuf};

use mysql_async::{ClientIdentity, Conn, DriverError, IoError, Opts, OptsBuilder, SslOpts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::CertificateError;

use crate::error::{Error, Result};

/// How a connection uses TLS, as the mysql client's `--ssl-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connections.
    Disabled,
    /// TLS when the server offers it, with no verification; plain otherwise.
    Preferred,
    /// TLS or fail, with no verification of the server's certificate.
    Required,
    /// TLS, the server's certificate chain verified against `--ssl-ca`.
    VerifyCa,
    /// As VERIFY_CA, and the certificate must name the host connected to.
    VerifyIdentity,
}

impl SslMode {
    /// Parses a mode as the mysql client spells it (any case, `-` or `_`).
    pub fn parse(text: &str) -> std::result::Result<SslMode, String> {
        match text.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => Ok(SslMode::Disabled),
            "PREFERRED" => Ok(SslMode::Preferred),
            "REQUIRED" => Ok(SslMode::Required),
            "VERIFY_CA" => Ok(SslMode::VerifyCa),
            "VERIFY_IDENTITY" => Ok(SslMode::VerifyIdentity),
            _ => Err(format!("`{text}` is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY")),
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyIdentity)
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        })
    }
}

/// The TLS settings as given, before validation: flags merged with the option file.
#[derive(Debug, Default, Clone)]
pub struct TlsSettings {
    pub mode: Option<SslMode>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// gh-ost's `--ssl`.
    pub ghost_ssl: bool,
    /// gh-ost's `--ssl-allow-insecure`.
    pub ghost_allow_insecure: bool,
}

/// The client certificate and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Validated TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub ca: Option<PathBuf>,
    pub identity: Option<Identity>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls { mode: SslMode::Preferred, ca: None, identity: None }
    }
}

impl Tls {
    /// Validates the settings (exit 2 on any contradiction or unreadable file). Without a mode,
    /// VERIFY_CA when a CA is given, else PREFERRED, as the mysql client does. Over a Unix
    /// socket the driver does not use TLS, so only DISABLED and PREFERRED (meaning plain) fit.
    pub fn from_settings(settings: TlsSettings, over_socket: bool) -> Result<Tls> {
        let mode = match (ghost_mode(&settings)?, settings.mode) {
            (Some(_), Some(_)) => return Err(Error::usage("gh-ost's --ssl and --ssl-mode both say how to use TLS", "pass one of them: --ssl-mode is alterego's own")),
            (Some(mode), None) | (None, Some(mode)) => mode,
            (None, None) if settings.ca.is_some() => SslMode::VerifyCa,
            (None, None) => SslMode::Preferred,
        };
        let identity = match (settings.cert, settings.key) {
            (Some(cert), Some(key)) => Some(Identity { cert, key }),
            (None, None) => None,
            _ => return Err(Error::usage("--ssl-cert and --ssl-key go together: one is given without the other", "pass both the client certificate and its private key, or neither")),
        };
        let tls = Tls { mode, ca: settings.ca, identity };
        tls.check_consistent(over_socket)?;
        tls.check_files()?;
        Ok(if over_socket { Tls { mode: SslMode::Disabled, ..tls } } else { tls })
    }

    fn check_consistent(&self, over_socket: bool) -> Result<()> {
        let mode = self.mode;
        if over_socket && !matches!(mode, SslMode::Disabled | SslMode::Preferred) {
            return Err(Error::usage(
                format!("--ssl-mode={mode} needs TLS, and a connection over --socket does not use it"),
                "connect over TCP with --host and --port, or use --ssl-mode=PREFERRED (the socket is local)",
            ));
        }
        let has_files = self.ca.is_some() || self.identity.is_some();
        if has_files && (mode == SslMode::Disabled || over_socket) {
            return Err(Error::usage(
                format!("--ssl-ca, --ssl-cert and --ssl-key are not used with {}", if over_socket { "a connection over --socket" } else { "--ssl-mode=DISABLED" }),
                "drop them (also from the option file's [client] group), or use TLS over TCP",
            ));
        }
        if mode.verifies() && self.ca.is_none() {
            return Err(Error::usage(
                format!("--ssl-mode={mode} verifies the server's certificate, but no --ssl-ca says which CA to trust"),
                "pass --ssl-ca FILE with the CA certificate (PEM) that signed the server's certificate",
            ));
        }
        if !mode.verifies() && self.ca.is_some() {
            return Err(Error::usage(
                format!("--ssl-ca is given, but --ssl-mode={mode} does not verify the server's certificate"),
                "use --ssl-mode=VERIFY_CA or VERIFY_IDENTITY to verify it, or drop --ssl-ca",
            ));
        }
        Ok(())
    }

    fn check_files(&self) -> Result<()> {
        if let Some(ca) = &self.ca {
            read_certificates("--ssl-ca", ca)?;
        }
        if let Some(identity) = &self.identity {
            read_certificates("--ssl-cert", &identity.cert)?;
            PrivateKeyDer::from_pem_file(&identity.key).map_err(|e| unreadable("--ssl-key", &identity.key, e, "a private key"))?;
        }
        Ok(())
    }

    /// The driver's TLS options for this mode; `None` for plain connections.
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        let base = SslOpts::default().with_client_identity(self.identity.as_ref().map(|i| ClientIdentity::new(i.cert.clone().into(), i.key.clone().into())));
        match self.mode {
            SslMode::Disabled => None,
            SslMode::Preferred | SslMode::Required => Some(base.with_danger_accept_invalid_certs(true)),
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                let trusted = base.with_root_certs(self.ca.iter().map(|ca| ca.clone().into()).collect()).with_disable_built_in_roots(true);
                Some(trusted.with_danger_skip_domain_validation(self.mode == SslMode::VerifyCa))
            }
        }
    }
}

/// gh-ost's flags as a mode: `--ssl` verifies the certificate and the host name (with a CA to
/// trust, as alterego has no system roots); `--ssl-allow-insecure` turns verification off.
fn ghost_mode(settings: &TlsSettings) -> Result<Option<SslMode>> {
    match (settings.ghost_ssl, settings.ghost_allow_insecure) {
        (false, false) => Ok(None),
        (false, true) => Err(Error::usage("--ssl-allow-insecure has no effect without --ssl", "add --ssl (gh-ost's spelling) or use --ssl-mode=REQUIRED")),
        (true, true) => Ok(Some(SslMode::Required)),
        (true, false) if settings.ca.is_some() => Ok(Some(SslMode::VerifyIdentity)),
        (true, false) => Err(Error::usage(
            "gh-ost's --ssl verifies the server's certificate against the system's CAs; alterego trusts only the CA you name",
            "pass --ssl-ca FILE with the CA that signed the server's certificate, or add --ssl-allow-insecure to skip verification",
        )),
    }
}

fn read_certificates(flag: &str, file: &Path) -> Result<()> {
    let mut certificates = CertificateDer::pem_file_iter(file).map_err(|e| unreadable(flag, file, e, "certificates"))?;
    match certificates.next() {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(unreadable(flag, file, e, "certificates")),
        None => Err(unreadable(flag, file, "no certificate in it", "certificates")),
    }
}

fn unreadable(flag: &str, file: &Path, why: impl std::fmt::Display, what: &str) -> Error {
    Error::usage(format!("cannot read {flag} {}: {why}", file.display()), format!("pass a readable PEM file with {what} (`-----BEGIN ...` blocks)"))
}

/// Opens a connection with `opts`, returning it with the options that worked, for the caller
/// to reuse. Two cases are tried again once: PREFERRED against a server that offers no TLS
/// connects plain; VERIFY_CA against a certificate whose chain verified but that does not name
/// the host connects again checking a name the certificate holds (the driver's own "skip the
/// name" switch does not work with the rustls it is built with: mysql_async issue 404).
pub async fn connect(opts: Opts, mode: SslMode) -> std::result::Result<(Conn, Opts), mysql_async::Error> {
    let first = match Conn::new(opts.clone()).await {
        Ok(conn) => return Ok((conn, opts)),
        Err(e) => e,
    };
    let Some(retry) = second_try(&opts, mode, &first) else { return Err(first) };
    Ok((Conn::new(retry.clone()).await?, retry))
}

fn second_try(opts: &Opts, mode: SslMode, e: &mysql_async::Error) -> Option<Opts> {
    let host = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    if mode == SslMode::Preferred && offers_no_tls(e) {
        tracing::info!("{host} offers no TLS: connecting without it (--ssl-mode=PREFERRED); use --ssl-mode=REQUIRED or VERIFY_CA to insist on TLS");
        return Some(OptsBuilder::from_opts(opts.clone()).ssl_opts(None).into());
    }
    let name = (mode == SslMode::VerifyCa).then(|| rustls_error(e)).flatten().and_then(certificate_name)?;
    tracing::debug!("{host}: the certificate is signed by --ssl-ca but names {name}, not the host; VERIFY_CA checks it for {name}");
    let ssl = opts.ssl_opts()?.clone().with_danger_tls_hostname_override(Some(name));
    Some(OptsBuilder::from_opts(opts.clone()).ssl_opts(ssl).into())
}

fn offers_no_tls(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
}

/// The TLS library's error behind a driver error, if the handshake failed.
fn rustls_error(e: &mysql_async::Error) -> Option<&rustls::Error> {
    match e {
        mysql_async::Error::Io(IoError::Io(io)) => io.get_ref()?.downcast_ref(),
        mysql_async::Error::Io(IoError::Tls(mysql_async::TlsError::Tls(tls))) => Some(tls),
        _ => None,
    }
}

/// A name the server's certificate holds, from a name mismatch (which the verifier reports only
/// after the chain verified), usable as the name to check.
fn certificate_name(e: &rustls::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) = e else { return None };
    presented.iter().find_map(|p| presented_name(p))
}

/// `DnsName("db.example.com")` -> `db.example.com`, `IpAddress(10.0.0.1)` -> `10.0.0.1`: the
/// verifier's rendering of a subjectAltName. A wildcard becomes a name it covers.
fn presented_name(presented: &str) -> Option<String> {
    let name = match presented.strip_prefix("DnsName(\"") {
        Some(dns) => dns.strip_suffix("\")")?.replacen("*.", "wildcard.", 1),
        None => presented.strip_prefix("IpAddress(")?.strip_suffix(')')?.to_string(),
    };
    rustls::pki_types::ServerName::try_from(name.as_str()).is_ok().then_some(name)
}

/// What failed and what to do, when a connection failed because of TLS (or because the
/// server insists on it); `None` for other failures.
pub fn explain(e: &mysql_async::Error, tls: &Tls) -> Option<(String, String)> {
    let mode = tls.mode;
    let ca = tls.ca.as_deref().map_or_else(String::new, |p| p.display().to_string());
    if offers_no_tls(e) {
        return Some((
            format!("the server offers no TLS, and --ssl-mode={mode} requires it"),
            "enable TLS on the server (ssl_cert and ssl_key in its configuration), or use --ssl-mode=PREFERRED to connect without TLS".into(),
        ));
    }
    if let mysql_async::Error::Server(s) = e {
        return refused_by_server(s, tls).map(|fix| (crate::error::describe_mysql_error(e), fix));
    }
    let skip = "or --ssl-mode=REQUIRED to skip verification";
    Some(match rustls_error(e)? {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => (format!("the server's certificate is not signed by --ssl-ca {ca}"), format!("pass the CA that signed it, {skip}")),
        rustls::Error::InvalidCertificate(c @ (CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => (
            format!("the server's certificate does not name the host it was reached as ({c})"),
            "connect with --host set to a name the certificate holds, or use --ssl-mode=VERIFY_CA to verify the CA only".into(),
        ),
        rustls::Error::InvalidCertificate(c) => (format!("the server's certificate is not accepted: {c}"), format!("fix the server's certificate, {skip}")),
        rustls::Error::AlertReceived(alert) => {
            (format!("the server ended the TLS handshake ({alert:?})"), "if the server checks client certificates, pass --ssl-cert and --ssl-key signed by a CA it trusts (its ssl_ca)".into())
        }
        other => (format!("the TLS handshake failed: {other}"), "check the server's TLS setup (ssl_cert, ssl_key) and --ssl-mode".into()),
    })
}

/// MySQL's code for "connections using insecure transport are prohibited".
const INSECURE_TRANSPORT: u16 = 3159;
/// MariaDB answers a plain connection under require_secure_transport, and an account's
/// REQUIRE X509 without a client certificate, with this code.
const ACCESS_DENIED: u16 = 1045;

/// The fix for a server's refusal that TLS settings can cause.
fn refused_by_server(e: &mysql_async::ServerError, tls: &Tls) -> Option<String> {
    let use_tls = "use --ssl-mode=VERIFY_CA with --ssl-ca (recommended), or REQUIRED";
    if e.code == INSECURE_TRANSPORT {
        return Some(format!("the server accepts only TLS connections (require_secure_transport): {use_tls}"));
    }
    if e.code != ACCESS_DENIED {
        return None;
    }
    let credentials = "check --user and the password (ALTEREGO_PASSWORD, --ask-pass or the option file)";
    Some(match (tls.mode, &tls.identity) {
        (SslMode::Disabled, _) => format!("{credentials}; if the server accepts only TLS connections (require_secure_transport=ON, which MariaDB reports as access denied), {use_tls}"),
        (_, None) => format!("{credentials}; if the account REQUIREs X509 or a SUBJECT, pass --ssl-cert and --ssl-key"),
        (_, Some(_)) => format!("{credentials}; if the account REQUIREs a SUBJECT or an ISSUER, pass the client certificate that matches it"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: Option<SslMode>) -> TlsSettings {
        TlsSettings { mode, ..Default::default() }
    }

    #[test]
    fn modes_parse_like_the_mysql_client() {
        assert_eq!(SslMode::parse("verify_ca"), Ok(SslMode::VerifyCa));
        assert_eq!(SslMode::parse("VERIFY-IDENTITY"), Ok(SslMode::VerifyIdentity));
        assert_eq!(SslMode::parse("Preferred"), Ok(SslMode::Preferred));
        assert!(SslMode::parse("ON").is_err());
    }

    #[test]
    fn defaults_to_preferred_and_to_verify_ca_with_a_ca() {
        assert_eq!(Tls::from_settings(settings(None), false).unwrap().mode, SslMode::Preferred);
        let with_ca = TlsSettings { ca: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let e = Tls::from_settings(with_ca, false).unwrap_err();
        assert!(e.message.contains("cannot read --ssl-ca /nonexistent/ca.pem"), "{}", e.message);
    }

    #[test]
    fn refuses_contradictions() {
        let cases = [
            (TlsSettings { mode: Some(SslMode::VerifyCa), ..Default::default() }, "no --ssl-ca"),
            (TlsSettings { mode: Some(SslMode::Disabled), ca: Some("ca.pem".into()), ..Default::default() }, "not used with --ssl-mode=DISABLED"),
            (TlsSettings { mode: Some(SslMode::Required), ca: Some("ca.pem".into()), ..Default::default() }, "does not verify"),
            (TlsSettings { cert: Some("c.pem".into()), ..Default::default() }, "go together"),
            (TlsSettings { ghost_ssl: true, ..Default::default() }, "system's CAs"),
            (TlsSettings { ghost_allow_insecure: true, ..Default::default() }, "without --ssl"),
            (TlsSettings { ghost_ssl: true, ghost_allow_insecure: true, mode: Some(SslMode::Required), ..Default::default() }, "both"),
        ];
        for (s, needle) in cases {
            let e = Tls::from_settings(s, false).unwrap_err();
            assert_eq!(e.kind, crate::error::ExitKind::Usage);
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        let e = Tls::from_settings(settings(Some(SslMode::Required)), true).unwrap_err();
        assert!(e.message.contains("--socket"), "{}", e.message);
    }

    #[test]
    fn ghost_flags_map_to_modes() {
        let insecure = TlsSettings { ghost_ssl: true, ghost_allow_insecure: true, ..Default::default() };
        assert_eq!(Tls::from_settings(insecure, false).unwrap().mode, SslMode::Required);
        let verified = TlsSettings { ghost_ssl: true, ca: Some("ca.pem".into()), ..Default::default() };
        assert_eq!(ghost_mode(&verified).unwrap(), Some(SslMode::VerifyIdentity));
    }

    #[test]
    fn preferred_over_a_socket_is_plain() {
        assert_eq!(Tls::from_settings(settings(None), true).unwrap().mode, SslMode::Disabled);
        assert!(Tls::from_settings(settings(Some(SslMode::Disabled)), false).unwrap().ssl_opts().is_none());
    }

    #[test]
    fn only_verifying_modes_check_the_certificate() {
        let opts = |mode| Tls { mode, ca: Some("ca.pem".into()), identity: None }.ssl_opts().unwrap();
        assert!(opts(SslMode::Required).accept_invalid_certs());
        let ca = opts(SslMode::VerifyCa);
        assert!(!ca.accept_invalid_certs() && ca.skip_domain_validation() && ca.disable_built_in_roots());
        let identity = opts(SslMode::VerifyIdentity);
        assert!(!identity.accept_invalid_certs() && !identity.skip_domain_validation());
    }

    #[test]
    fn reads_names_the_verifier_presents() {
        assert_eq!(presented_name("DnsName(\"db.example.com\")").as_deref(), Some("db.example.com"));
        assert_eq!(presented_name("DnsName(\"*.example.com\")").as_deref(), Some("wildcard.example.com"));
        assert_eq!(presented_name("IpAddress(10.0.0.1)").as_deref(), Some("10.0.0.1"));
        assert_eq!(presented_name("IpAddress(::1)").as_deref(), Some("::1"));
        assert_eq!(presented_name("UniformResourceIdentifier(\"spiffe://x\")"), None);
    }
}
