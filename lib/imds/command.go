package imds

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
)

// UserDataCommand is `pkgrun user-data`: the worker image's /init
// (lib/vmimage) runs it on an EC2 instance to read its settings.
type UserDataCommand struct {
	IMDS string        `name:"imds" default:"http://169.254.169.254" help:"The instance metadata service." placeholder:"URL"`
	Wait time.Duration `default:"60s" help:"Keep trying this long while the service cannot be reached or fails (the network may just have come up)." placeholder:"DURATION"`
}

// Help is kong's long help for pkgrun user-data.
func (c *UserDataCommand) Help() string {
	return `Print this EC2 instance's user data, read from the instance metadata
service with IMDSv2 (a session token from PUT /latest/api/token, then GET
/latest/user-data with it). The worker image's /init runs it to learn the
pull server, pin, name, labels and token (lib/provider/ec2 writes them).

Exit status: 0 printed; 1 the instance has no user data, or the service
did not answer within --wait; 2 bad usage.`
}

// Run is pkgrun user-data.
func (c *UserDataCommand) Run(ctx context.Context, g *cli.Globals) error {
	ctx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	b, err := FetchUserData(ctx, NewClient(Config{URL: c.IMDS}))
	if err != nil {
		return fmt.Errorf("%w: %w", cli.ErrFailed, err)
	}
	_, err = g.Stdout.Write(b)
	return err
}

// FetchUserData reads the user data through c, trying again every half
// second until ctx ends while the service cannot be reached or fails; no
// user data (404) is an error at once.
func FetchUserData(ctx context.Context, c *Client) ([]byte, error) {
	for {
		b, err := c.UserData(ctx)
		if err == nil {
			return b, nil
		}
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("imds: %s: the instance has no user data", c.cfg.URL)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("imds: user data: %w (gave up: %v)", err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
