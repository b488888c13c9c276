// Package ec2 is a provider (lib/provider) of builder machines that are
// EC2 instances, through the AWS SDK (github.com/aws/aws-sdk-go-v2).
//
// Start runs one instance per worker (RunInstances) from an image that
// boots into `pkgrun worker` (lib/vmimage's /init reads the same
// settings from its user data), spot (InstanceMarketOptions, one-time,
// terminate on interruption) or on-demand, tagged with the machine's tags
// and a Name; the user data carries the server's URL, its pin, the
// worker's name and labels, the metadata service to watch for spot
// notices, and the worker's one-session token (which the worker trades
// for a session at once, so a later reader of the user data gets nothing
// it can use). Instances shut down by themselves terminate (a worker that
// exits powers its machine off). List is DescribeInstances filtered by
// tag and state; Stop is TerminateInstances.
package ec2

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/pkgbulk/pkgbulk/lib/imds"
	"github.com/pkgbulk/pkgbulk/lib/provider"
)

// Config configures the provider.
type Config struct {
	// Region is the EC2 region (default: the SDK's, from AWS_REGION or
	// the shared config).
	Region string
	// Endpoint overrides the EC2 endpoint (tests: lib/provider/ec2/ec2test).
	Endpoint string
	// AccessKey and SecretKey, when set, are the credentials; otherwise
	// the SDK's default chain (environment, shared files, instance role).
	AccessKey, SecretKey string
	// ImageID is the AMI that boots into pkgrun worker (required).
	ImageID string
	// InstanceType (default t3.medium).
	InstanceType string
	// SubnetID and SecurityGroupIDs place the instances ("" / nil: the
	// account's defaults). The group needs no inbound rule: workers
	// only dial out.
	SubnetID         string
	SecurityGroupIDs []string
	// MaxSpotPrice caps the spot price ("": up to the on-demand price).
	MaxSpotPrice string
	// IMDS is the metadata service the workers watch for spot notices
	// (default imds.DefaultURL).
	IMDS string
}

// Provider starts EC2 instances.
type Provider struct {
	cfg Config
	c   *awsec2.Client
}

// New returns a provider for cfg.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.ImageID == "" {
		return nil, errors.New("ec2 provider: no image (ami=)")
	}
	if cfg.InstanceType == "" {
		cfg.InstanceType = "t3.medium"
	}
	if cfg.IMDS == "" {
		cfg.IMDS = imds.DefaultURL
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("ec2 provider: AWS configuration: %w", err)
	}
	if ac.Region == "" {
		return nil, errors.New("ec2 provider: no region (region= or AWS_REGION)")
	}
	cfg.Region = ac.Region
	c := awsec2.NewFromConfig(ac, func(o *awsec2.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Provider{cfg: cfg, c: c}, nil
}

// Name is "ec2:REGION".
func (p *Provider) Name() string { return "ec2:" + p.cfg.Region }

// Close has nothing to release.
func (p *Provider) Close() error { return nil }

// UserData is the user data of a worker's instance: key=value lines that
// lib/vmimage's /init reads (server, pin, name, label, imds, token).
// imdsURL is the metadata service whose spot notices the worker watches
// ("" for none: an on-demand instance).
func UserData(w provider.Worker, cfg provider.WorkerConfig, imdsURL string) ([]byte, error) {
	var b strings.Builder
	line := func(k, v string) error {
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("user data: %s %q has a line break", k, v)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
		return nil
	}
	if _, err := url.Parse(cfg.ServerURL); err != nil {
		return nil, fmt.Errorf("user data: server URL: %w", err)
	}
	kv := [][2]string{{"server", cfg.ServerURL}, {"name", w.Name}}
	if cfg.Fingerprint != "" {
		kv = append(kv, [2]string{"pin", cfg.Fingerprint})
	}
	for _, l := range provider.LabelArgs(cfg.Labels) {
		kv = append(kv, [2]string{"label", l})
	}
	// Always said: an empty one tells /init to watch nothing and to hide
	// the metadata service from the builds.
	kv = append(kv, [2]string{"imds", imdsURL})
	kv = append(kv, [2]string{"token", w.Token})
	for _, e := range kv {
		if err := line(e[0], e[1]); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}

// ParseUserData reads user data written by UserData: the settings (label
// may repeat) in order.
func ParseUserData(b []byte) ([][2]string, error) {
	var out [][2]string
	for i, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("user data line %d: not key=value", i+1)
		}
		switch k {
		case "server", "pin", "name", "label", "imds", "token":
		default:
			return nil, fmt.Errorf("user data line %d: unknown key %q", i+1, k)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func ec2Tags(tags map[string]string) []types.Tag {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// Start runs one instance per worker.
func (p *Provider) Start(ctx context.Context, req provider.StartRequest) ([]provider.Instance, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	var out []provider.Instance
	for _, w := range req.Workers {
		in, err := p.start(ctx, req, w)
		if err != nil {
			return out, fmt.Errorf("ec2 provider: start %s: %w", w.Name, err)
		}
		out = append(out, in)
	}
	return out, nil
}

func (p *Provider) start(ctx context.Context, req provider.StartRequest, w provider.Worker) (provider.Instance, error) {
	imdsURL := ""
	if req.Spot {
		imdsURL = p.cfg.IMDS
	}
	ud, err := UserData(w, req.Config, imdsURL)
	if err != nil {
		return provider.Instance{}, err
	}
	tags := req.MachineTags(w)
	itags := ec2Tags(tags)
	itags = append(itags, types.Tag{Key: aws.String("Name"), Value: aws.String("pkgbulk " + w.Name)})
	in := &awsec2.RunInstancesInput{
		ImageId:      aws.String(p.cfg.ImageID),
		InstanceType: types.InstanceType(p.cfg.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		UserData:     aws.String(base64.StdEncoding.EncodeToString(ud)),
		// A worker that exits powers its machine off: that ends it.
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired, // IMDSv2 only
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
			// Not past the instance's own network stack (an AMI
			// registered with --imds-support v2.0 would get 2).
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: itags},
			{ResourceType: types.ResourceTypeVolume, Tags: ec2Tags(tags)},
		},
	}
	if p.cfg.SubnetID != "" {
		in.SubnetId = aws.String(p.cfg.SubnetID)
	}
	if len(p.cfg.SecurityGroupIDs) > 0 {
		in.SecurityGroupIds = p.cfg.SecurityGroupIDs
	}
	if req.Spot {
		so := &types.SpotMarketOptions{
			SpotInstanceType:             types.SpotInstanceTypeOneTime,
			InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
		}
		if p.cfg.MaxSpotPrice != "" {
			so.MaxPrice = aws.String(p.cfg.MaxSpotPrice)
		}
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot, SpotOptions: so}
	}
	out, err := p.c.RunInstances(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && NoCapacity(ae.ErrorCode(), req.Spot) {
			return provider.Instance{}, fmt.Errorf("%w (%s %s): %s: %s", provider.ErrNoCapacity, market(req.Spot), p.cfg.InstanceType, ae.ErrorCode(), ae.ErrorMessage())
		}
		return provider.Instance{}, err
	}
	if len(out.Instances) != 1 {
		return provider.Instance{}, fmt.Errorf("RunInstances returned %d instances, want 1", len(out.Instances))
	}
	return instance(out.Instances[0]), nil
}

// NoCapacity reports whether RunInstances' error code means that EC2 has
// no machines for the request now (provider.ErrNoCapacity) rather than a
// bad request or a fault: no capacity for the instance type in the zone
// (InsufficientInstanceCapacity, InsufficientCapacity,
// InsufficientHostCapacity on dedicated hosts,
// InsufficientReservedInstanceCapacity), and for spot requests no spare
// spot capacity (UnfulfillableCapacity), a maximum price below the spot
// price (SpotMaxPriceTooLow) or the spot instance quota reached
// (MaxSpotInstanceCountExceeded): on-demand machines may still start.
// Quotas of on-demand instances (InstanceLimitExceeded,
// VcpuLimitExceeded) are not: more of the same would fail the same way.
func NoCapacity(code string, spot bool) bool {
	switch code {
	case "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity":
		return true
	case "UnfulfillableCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded":
		return spot
	}
	return false
}

func market(spot bool) string {
	if spot {
		return "spot"
	}
	return "on-demand"
}

// instance converts an EC2 instance.
func instance(i types.Instance) provider.Instance {
	tags := map[string]string{}
	for _, t := range i.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	in := provider.Instance{
		ID:    aws.ToString(i.InstanceId),
		Name:  tags[provider.TagWorker],
		Spot:  i.InstanceLifecycle == types.InstanceLifecycleTypeSpot || tags[provider.TagSpot] == "true",
		Tags:  tags,
		State: provider.Pending,
	}
	if i.LaunchTime != nil {
		in.Started = *i.LaunchTime
	}
	if i.State != nil {
		switch i.State.Name {
		case types.InstanceStateNameRunning:
			in.State = provider.Running
		case types.InstanceStateNameShuttingDown, types.InstanceStateNameStopping, types.InstanceStateNameStopped:
			in.State = provider.Stopping
		case types.InstanceStateNameTerminated:
			in.State = provider.Terminated
		}
	}
	return in
}

// List describes the instances that carry every tag and are not
// terminated.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	filters := []types.Filter{{
		Name:   aws.String("instance-state-name"),
		Values: []string{"pending", "running", "shutting-down", "stopping", "stopped"},
	}}
	for _, t := range ec2Tags(tags) {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + aws.ToString(t.Key)), Values: []string{aws.ToString(t.Value)}})
	}
	var out []provider.Instance
	pg := awsec2.NewDescribeInstancesPaginator(p.c, &awsec2.DescribeInstancesInput{Filters: filters})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ec2 provider: describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				in := instance(i)
				// Filter again: an endpoint that ignores a filter
				// must not make us stop someone else's machine.
				if in.State != provider.Terminated && provider.Matches(in.Tags, tags) {
					out = append(out, in)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// Stop terminates the instances ids. Ids EC2 does not know (or that are
// not instance ids) are not an error.
func (p *Provider) Stop(ctx context.Context, ids []string) error {
	var valid []string
	for _, id := range ids {
		if strings.HasPrefix(id, "i-") {
			valid = append(valid, id)
		}
	}
	if len(valid) == 0 {
		return nil
	}
	_, err := p.c.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: valid})
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || !strings.HasPrefix(ae.ErrorCode(), "InvalidInstanceID") {
		return fmt.Errorf("ec2 provider: terminate %s: %w", strings.Join(valid, " "), err)
	}
	// One unknown id fails the whole call: terminate one at a time.
	var errs []error
	for _, id := range valid {
		_, err := p.c.TerminateInstances(ctx, &awsec2.TerminateInstancesInput{InstanceIds: []string{id}})
		if err != nil && !(errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "InvalidInstanceID")) {
			errs = append(errs, fmt.Errorf("ec2 provider: terminate %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// pollEvery is how often WaitGone asks.
var pollEvery = 2 * time.Second

// WaitGone waits until none of ids is listed any more (terminated).
func (p *Provider) WaitGone(ctx context.Context, tags map[string]string, ids []string) error {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for {
		ls, err := p.List(ctx, tags)
		if err != nil {
			return err
		}
		left := 0
		for _, in := range ls {
			if want[in.ID] {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ec2 provider: %d instances not terminated: %w", left, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}
