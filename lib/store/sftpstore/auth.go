package sftpstore

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// AuthOptions say which keys to offer.
type AuthOptions struct {
	// IdentityFile is a private key file (unencrypted). When empty, the
	// keys of a running ssh-agent are offered, then the default key files
	// in ~/.ssh that exist and need no passphrase.
	IdentityFile string
	// AgentSocket is $SSH_AUTH_SOCK ("" for no agent).
	AgentSocket string
	// Home is the user's home directory, for ~/.ssh.
	Home string
}

// Auth returns the authentication methods opts describe and a function
// that releases them (the agent connection).
func Auth(opts AuthOptions) ([]ssh.AuthMethod, func(), error) {
	if opts.IdentityFile != "" {
		signer, err := loadKey(opts.IdentityFile)
		if err != nil {
			return nil, nil, store.Permanent(err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, func() {}, nil
	}
	var methods []ssh.AuthMethod
	release := func() {}
	if opts.AgentSocket != "" {
		conn, err := net.Dial("unix", opts.AgentSocket)
		if err == nil {
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
			release = func() { conn.Close() }
		}
	}
	var signers []ssh.Signer
	if opts.Home != "" {
		for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if s, err := loadKey(filepath.Join(opts.Home, ".ssh", k)); err == nil {
				signers = append(signers, s)
			}
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if len(methods) == 0 {
		release()
		return nil, nil, store.Permanent(errors.New("no SSH key: give an identity file, run ssh-agent (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519 without a passphrase"))
	}
	return methods, release, nil
}

func loadKey(file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ssh identity: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("ssh identity %s needs a passphrase: load it into ssh-agent instead", file)
		}
		return nil, fmt.Errorf("ssh identity %s: %w", file, err)
	}
	return signer, nil
}

// HostKeyChecker returns a callback that accepts only the host keys that
// knownHostsFile lists for the server, and the key algorithms to ask the
// server for (those of the listed keys), so that a server with several
// host keys presents the one the file knows.
func HostKeyChecker(knownHostsFile string, cfg Config) (ssh.HostKeyCallback, []string, error) {
	if knownHostsFile == "" {
		return nil, nil, store.Permanent(errors.New("no known_hosts file given"))
	}
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, nil, store.Permanent(fmt.Errorf("known_hosts file %s (needed to check the host key of %s): %w", knownHostsFile, cfg.Host, err))
	}
	addr := cfg.addr()
	checked := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return store.Permanent(fmt.Errorf("host key of %s is unknown: %s (%s) is not in %s; "+
				"check its fingerprint, then add it (e.g. ssh-keyscan -p %d %s >> %s)",
				hostname, key.Type(), ssh.FingerprintSHA256(key), knownHostsFile, portOr22(cfg.Port), cfg.Host, knownHostsFile))
		case errors.As(err, &ke):
			return store.Permanent(fmt.Errorf("HOST KEY MISMATCH for %s: it presented %s %s, but %s line %d lists another key; "+
				"someone may be intercepting the connection, or the host key changed",
				hostname, key.Type(), ssh.FingerprintSHA256(key), ke.Want[0].Filename, ke.Want[0].Line))
		}
		return store.Permanent(fmt.Errorf("host key of %s: %w", hostname, err))
	}
	// Ask the checker which keys it knows by offering a key it cannot know.
	var algos []string
	var ke *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{}, probeKey{}); errors.As(err, &ke) {
		for _, k := range ke.Want {
			for _, a := range algorithmsFor(k.Key.Type()) {
				if !slices.Contains(algos, a) {
					algos = append(algos, a)
				}
			}
		}
	}
	return checked, algos, nil
}

func portOr22(p int) int {
	if p == 0 {
		return 22
	}
	return p
}

// algorithmsFor maps a key type to the signature algorithms that use it.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a public key no known_hosts file lists.
type probeKey struct{}

func (probeKey) Type() string                        { return "pkgbulk-probe" }
func (probeKey) Marshal() []byte                     { return []byte("\x00\x00\x00\x0dpkgbulk-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }
