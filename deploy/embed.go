// Package deploy holds what heloguard ships besides its binary: the systemd
// unit, the example config, the MTA snippets, the Debian packaging (deb/) and
// their end-to-end tests. The example config documents every key; it is
// embedded here so that `heloguard man 5` writes heloguard.yaml(5) from it.
package deploy

import _ "embed"

// ExampleConfig is heloguard.yaml: every key with its default value and the
// comment that explains it (the Debian package installs it as
// /etc/heloguard/heloguard.yaml).
//
//go:embed heloguard.yaml
var ExampleConfig []byte
