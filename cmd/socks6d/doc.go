// Command socks6d is a SOCKS5 gateway daemon (RFC 1928, with RFC 1929
// username/password logins). It reads its configuration from flags and an
// optional TOML file (internal/config), serves every listen address with
// one server.Server, logs through log/slog to standard error, reloads the
// configuration and users file on SIGHUP, and shuts down gracefully on
// SIGTERM or SIGINT. "socks6d passwd" adds users to, or changes passwords
// in, the bcrypt users file.
//
// It is the only place in the module that reads flags and files for the
// gateway, installs the default logger, handles signals and exits; the
// library packages it drives do none of that.
//
// See README.md in this directory for the flags, the configuration
// reference, the users file, signals and the audit log.
package main
