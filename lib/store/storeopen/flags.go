package storeopen

import (
	"fmt"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

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

// Access turns the flags into the store_access part of pkgrun's job
// settings (lib/job), which pkgsched hands to every pkgrun. The connect
// timeout is only carried when it was given on the command line
// (timeoutGiven), so a flag's default never overrides a job document.
func (f Flags) Access(timeoutGiven bool) job.StoreAccess {
	a := job.StoreAccess{
		S3Endpoint:  f.S3Endpoint,
		S3Region:    f.S3Region,
		S3AllowHTTP: f.S3AllowHTTP,
		SSHIdentity: f.SSHIdentity,
		KnownHosts:  f.KnownHosts,
	}
	if timeoutGiven && f.ConnectTimeout > 0 {
		a.ConnectTimeout = f.ConnectTimeout.String()
	}
	return a
}

// AccessOptions turns a job document's store_access into Options for Open.
func AccessOptions(a *job.StoreAccess) (Options, error) {
	if a == nil {
		return Options{}, nil
	}
	o := Options{
		S3Endpoint:  a.S3Endpoint,
		S3Region:    a.S3Region,
		S3AllowHTTP: a.S3AllowHTTP,
		SSHIdentity: a.SSHIdentity,
		KnownHosts:  a.KnownHosts,
	}
	if a.ConnectTimeout != "" {
		d, err := time.ParseDuration(a.ConnectTimeout)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("store_access: bad connect_timeout %q (want a positive Go duration such as 30s)", a.ConnectTimeout)
		}
		o.ConnectTimeout = d
	}
	return o, nil
}
