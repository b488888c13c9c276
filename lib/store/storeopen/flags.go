package storeopen

import "time"

// Flags are the command-line flags for opening a store, for tools to
// embed in their kong grammar:
//
//	Store storeopen.Flags `embed:"" group:"Store access"`
//
// S3 keys have no flags on purpose (a secret on a command line shows in
// ps): they come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS
// credentials file.
type Flags struct {
	S3Endpoint     string        `name:"s3-endpoint" placeholder:"URL" help:"S3 endpoint, e.g. https://s3.example.org or http://127.0.0.1:9000 (default: ?endpoint= in the URL, $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)."`
	S3Region       string        `name:"s3-region" placeholder:"REGION" help:"S3 region (default: ?region= in the URL, $AWS_REGION, else asked from the server)."`
	S3AllowHTTP    bool          `name:"s3-allow-http" help:"Allow a plain-http S3 endpoint that is not on loopback."`
	SSHIdentity    string        `name:"ssh-identity" type:"path" placeholder:"FILE" help:"SSH private key for sftp:// stores (default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)."`
	KnownHosts     string        `name:"known-hosts" type:"path" placeholder:"FILE" help:"known_hosts file that must list the sftp server's host key (default: ~/.ssh/known_hosts)."`
	ConnectTimeout time.Duration `name:"connect-timeout" default:"15s" help:"Give up connecting to a store server after this long."`
}

// Options turns the flags into Options for Open.
func (f Flags) Options() Options {
	return Options{
		S3Endpoint:     f.S3Endpoint,
		S3Region:       f.S3Region,
		S3AllowHTTP:    f.S3AllowHTTP,
		SSHIdentity:    f.SSHIdentity,
		KnownHosts:     f.KnownHosts,
		ConnectTimeout: f.ConnectTimeout,
	}
}
