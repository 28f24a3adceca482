// Package htpasswd authenticates SOCKS users against a users file in the
// htpasswd format with bcrypt hashes ("user:$2y$…", as written by
// htpasswd -B or socks6d passwd). Other hash formats (MD5 "$apr1$",
// "{SHA}", crypt, plain text) are refused when the file is loaded, with the
// file and line named, because they are too weak or too cheap to attack.
//
// bcrypt is deliberately slow (tens of milliseconds), and SOCKS
// authenticates every connection, so a File remembers credentials it has
// verified: an HMAC-SHA-256 of user, hash and password under a random
// per-process key. A later login with the same password costs one HMAC and
// a constant-time compare; a changed password or a reloaded hash misses
// the cache and is verified with bcrypt again. Concurrent bcrypt checks are
// limited to the number of CPUs so that a password-guessing flood slows
// only itself.
//
// A File is immutable once loaded (reload by loading a new one) and safe
// for concurrent use.
package htpasswd
