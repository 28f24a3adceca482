// Package config reads socks6d's configuration file (TOML) into a typed
// [Config], checks it, and turns it into the [server.Settings] that
// [server.Server] runs with.
//
// Loading happens in two steps. [Parse] decodes the file: TOML syntax,
// unknown keys (rejected), value types, and the syntax of every value
// (durations, networks, ports, commands, actions, log settings). [Validate]
// then checks what needs the whole configuration or the file system:
// listen addresses, ranges of numbers, groups that rules refer to, and the
// users file, which must be readable and hold bcrypt hashes only. [Load]
// does both. Between the two steps a caller such as cmd/socks6d may
// override fields from its command line.
//
// Every error names the place in the file it comes from, as
// "FILE:LINE: key: problem" (see [Error]), so that an operator can go
// straight to it; several problems are reported together, one per line.
//
// The package does not watch files, start servers or configure logging;
// cmd/socks6d does that. A Config is a plain value: it is not safe for
// concurrent mutation, and [Config.Settings] returns settings that share
// nothing mutable with it.
//
// The file format is documented in cmd/socks6d/README.md and, key by key,
// in socks6d.example.toml at the repository root.
package config
