// Package ec2test is a small EC2-compatible endpoint for tests: the Query
// API's RunInstances, DescribeInstances and TerminateInstances, answered
// in EC2's XML, so that the real AWS SDK (and lib/provider/ec2 through
// it) can be tested end to end. RunInstances boots a qemu VM
// (lib/provider/qemu) as an EC2 instance: the guest gets its address by
// DHCP and reads the instance's user data from its own metadata service
// at 169.254.169.254 (IMDSv2; metadata.go), the way lib/vmimage's /init
// does on EC2; other metadata, such as spot notices, comes from the
// metadata mock at the qemu configuration's IMDS. An instance whose VM
// powered itself off is terminated (shutdown behaviour terminate), as on
// EC2.
//
// Requests must be signed (SigV4) with AccessKey and SecretKey for Region
// within five minutes of now: the server signs each request again with
// the SDK's signer and refuses a mismatch with EC2's error document.
package ec2test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
)

// AccessKey and SecretKey are the credentials the server accepts.
const (
	AccessKey = "AKIDPKGBULKTEST"
	SecretKey = "pkgbulk-test-secret"
	Region    = "us-test-1"
)

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Server is the endpoint.
type Server struct {
	URL  string
	srv  *httptest.Server
	vms  *qemu.Provider
	mock string // the metadata mock's host:port ("" for none)

	mu        sync.Mutex
	instances map[string]*inst
	userData  map[string]*booting // worker name -> its instance, while it boots
	tokens    map[string]string   // RunInstances client token -> instance id
	calls     map[string]int      // requests per action
	faults    faults              // refusals on purpose (faults.go)
}

type inst struct {
	id, vm, imageID, itype string
	spot                   bool
	tags                   map[string]string
	launched               time.Time
	terminated             bool
	md                     *metadata
}

// booting is what RunInstances hands the qemu provider's Metadata.
type booting struct {
	kv   [][2]string
	spot bool
	md   *metadata
}

// New starts the endpoint; its VMs are started by a qemu provider with
// cfg, whose Metadata is set here and whose IMDS (host:port, "" for none)
// is the metadata mock the instances' metadata services pass on to.
// Close stops the VMs and the server.
func New(cfg qemu.Config) (*Server, error) {
	s := &Server{instances: map[string]*inst{}, userData: map[string]*booting{}, calls: map[string]int{}, tokens: map[string]string{}}
	s.mock, cfg.IMDS = cfg.IMDS, ""
	cfg.Metadata = s.instanceMetadata
	vms, err := qemu.New(cfg)
	if err != nil {
		return nil, err
	}
	s.vms = vms
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s, nil
}

// Close terminates every VM and stops the server.
func (s *Server) Close() {
	s.srv.Close()
	s.mu.Lock()
	var vms []string
	for _, in := range s.instances {
		vms = append(vms, in.vm)
	}
	s.mu.Unlock()
	s.vms.Stop(context.Background(), vms)
	s.mu.Lock()
	for _, in := range s.instances {
		in.md.close()
	}
	s.mu.Unlock()
}

// Calls is how many requests of action the server had.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// VMs is the qemu provider that runs the instances (for their consoles).
func (s *Server) VMs() *qemu.Provider { return s.vms }

// VM returns the qemu VM id of instance id ("" if unknown).
func (s *Server) VM(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.instances[id]; in != nil {
		return in.vm
	}
	return ""
}

// instanceMetadata starts the metadata service of the instance booting
// for worker w: its user data is the instance's, with the server's URL as
// the guest reaches it (the qemu provider's forward).
func (s *Server) instanceMetadata(w provider.Worker, _ provider.WorkerConfig, guestURL string) (string, error) {
	s.mu.Lock()
	bt := s.userData[w.Name]
	s.mu.Unlock()
	if bt == nil {
		return "", fmt.Errorf("ec2test: no instance is booting for worker %q", w.Name)
	}
	var b strings.Builder
	for _, e := range bt.kv {
		if e[0] == "server" {
			e[1] = guestURL
		}
		fmt.Fprintf(&b, "%s=%s\n", e[0], e[1])
	}
	md, err := startMetadata([]byte(b.String()), bt.spot, s.mock)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	bt.md = md
	s.mu.Unlock()
	return md.addr, nil
}

// apiError is EC2's error document.
type apiError struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

func requestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	xml.NewEncoder(w).Encode(apiError{Code: code, Message: msg, RequestID: requestID()})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		fail(w, http.StatusBadRequest, "InvalidRequest", "POST only")
		return
	}
	if !s.authorize(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	f := r.PostForm
	action := f.Get("Action")
	s.mu.Lock()
	s.calls[action]++
	s.mu.Unlock()
	switch action {
	case "RunInstances":
		s.runInstances(w, r.Context(), f)
	case "DescribeInstances":
		s.describeInstances(w, r.Context(), f)
	case "TerminateInstances":
		s.terminateInstances(w, r.Context(), f)
	default:
		fail(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action))
	}
}

type form = map[string][]string

func get(f form, k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// list reads prefix.1, prefix.2, ... (or prefix.1.suffix, ...).
func list(f form, prefix, suffix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := prefix + "." + strconv.Itoa(i)
		if suffix != "" {
			k += "." + suffix
		}
		v, ok := f[k]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlInstance struct {
	InstanceID        string   `xml:"instanceId"`
	ImageID           string   `xml:"imageId"`
	InstanceState     xmlState `xml:"instanceState"`
	InstanceType      string   `xml:"instanceType"`
	LaunchTime        string   `xml:"launchTime"`
	InstanceLifecycle string   `xml:"instanceLifecycle,omitempty"`
	TagSet            []xmlTag `xml:"tagSet>item"`
}

var states = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}

func (in *inst) state(running bool) string {
	switch {
	case in.terminated:
		return "terminated"
	case running:
		return "running"
	default:
		// The VM powered off (its worker exited): shutdown behaviour
		// terminate.
		in.terminated = true
		return "terminated"
	}
}

func (in *inst) xml(state string) xmlInstance {
	x := xmlInstance{InstanceID: in.id, ImageID: in.imageID, InstanceType: in.itype,
		InstanceState: xmlState{Code: states[state], Name: state}, LaunchTime: in.launched.Format(time.RFC3339)}
	if in.spot {
		x.InstanceLifecycle = "spot"
	}
	keys := make([]string, 0, len(in.tags))
	for k := range in.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.TagSet = append(x.TagSet, xmlTag{k, in.tags[k]})
	}
	return x
}

func (s *Server) runInstances(w http.ResponseWriter, ctx context.Context, f form) {
	if s.fault(w, f) {
		return
	}
	if get(f, "MinCount") != "1" || get(f, "MaxCount") != "1" {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", "this endpoint runs one instance per call")
		return
	}
	image := get(f, "ImageId")
	if image == "" {
		fail(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(get(f, "UserData"))
	if err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", "Invalid BASE64 encoding of user data")
		return
	}
	kv, err := ec2.ParseUserData(raw)
	if err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return
	}
	var wk provider.Worker
	var server string
	for _, e := range kv {
		switch e[0] {
		case "name":
			wk.Name = e[1]
		case "token":
			wk.Token = e[1]
		case "server":
			server = e[1]
		}
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt := get(f, p+".ResourceType")
		if rt == "" {
			break
		}
		if rt != "instance" {
			continue
		}
		keys, vals := list(f, p+".Tag", "Key"), list(f, p+".Tag", "Value")
		if len(keys) != len(vals) {
			fail(w, http.StatusBadRequest, "InvalidParameterValue", "a tag without a value")
			return
		}
		for j := range keys {
			tags[keys[j]] = vals[j]
		}
	}
	spot := get(f, "InstanceMarketOptions.MarketType") == "spot"
	if get(f, "InstanceInitiatedShutdownBehavior") != "terminate" {
		fail(w, http.StatusBadRequest, "InvalidParameterValue", "this endpoint needs InstanceInitiatedShutdownBehavior=terminate")
		return
	}
	// The SDK retries with the same client token (filled in when the
	// caller gives none): the same instance, not a second one.
	ct := get(f, "ClientToken")
	s.mu.Lock()
	if old := s.instances[s.tokens[ct]]; ct != "" && old != nil {
		s.mu.Unlock()
		s.replyRun(w, old)
		return
	}
	s.mu.Unlock()
	b := make([]byte, 9)
	rand.Read(b)
	in := &inst{id: "i-" + hex.EncodeToString(b)[:17], imageID: image, itype: get(f, "InstanceType"), spot: spot, tags: tags, launched: time.Now().UTC().Truncate(time.Second)}
	bt := &booting{kv: kv, spot: spot}
	s.mu.Lock()
	s.userData[wk.Name] = bt
	s.mu.Unlock()
	vmTags := map[string]string{provider.TagRun: "ec2test"}
	ins, err := s.vms.Start(ctx, provider.StartRequest{Workers: []provider.Worker{wk}, Spot: spot,
		Config: provider.WorkerConfig{ServerURL: server}, Tags: vmTags})
	s.mu.Lock()
	delete(s.userData, wk.Name)
	s.mu.Unlock()
	if err != nil {
		if bt.md != nil {
			bt.md.close()
		}
		fail(w, http.StatusInternalServerError, "InternalError", "boot: "+err.Error())
		return
	}
	in.vm, in.md = ins[0].ID, bt.md
	s.mu.Lock()
	s.instances[in.id] = in
	if ct != "" {
		s.tokens[ct] = in.id
	}
	s.mu.Unlock()
	s.replyRun(w, in)
}

func (s *Server) replyRun(w http.ResponseWriter, in *inst) {
	type resp struct {
		XMLName       xml.Name      `xml:"RunInstancesResponse"`
		Xmlns         string        `xml:"xmlns,attr"`
		RequestID     string        `xml:"requestId"`
		ReservationID string        `xml:"reservationId"`
		OwnerID       string        `xml:"ownerId"`
		Instances     []xmlInstance `xml:"instancesSet>item"`
	}
	reply(w, resp{Xmlns: xmlns, RequestID: requestID(), ReservationID: "r-" + in.id[2:], OwnerID: "000000000000",
		Instances: []xmlInstance{in.xml("pending")}})
}

// running is the set of VM ids that run now.
func (s *Server) running(ctx context.Context) (map[string]bool, error) {
	ls, err := s.vms.List(ctx, nil)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, in := range ls {
		m[in.ID] = true
	}
	return m, nil
}

func (s *Server) describeInstances(w http.ResponseWriter, ctx context.Context, f form) {
	run, err := s.running(ctx)
	if err != nil {
		fail(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	ids := map[string]bool{}
	for _, id := range list(f, "InstanceId", "") {
		ids[id] = true
	}
	type filter struct {
		name   string
		values []string
	}
	var filters []filter
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		n := get(f, p+".Name")
		if n == "" {
			break
		}
		if n != "instance-state-name" && n != "instance-id" && !strings.HasPrefix(n, "tag:") {
			fail(w, http.StatusBadRequest, "InvalidParameterValue", "The filter '"+n+"' is invalid")
			return
		}
		filters = append(filters, filter{n, list(f, p+".Value", "")})
	}
	s.mu.Lock()
	var items []xmlInstance
	var all []*inst
	for _, in := range s.instances {
		all = append(all, in)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	for _, in := range all {
		if len(ids) > 0 && !ids[in.id] {
			continue
		}
		st := in.state(run[in.vm])
		ok := true
		for _, fl := range filters {
			var have string
			switch {
			case fl.name == "instance-state-name":
				have = st
			case fl.name == "instance-id":
				have = in.id
			default:
				v, found := in.tags[strings.TrimPrefix(fl.name, "tag:")]
				if !found {
					ok = false
				}
				have = v
			}
			match := false
			for _, v := range fl.values {
				match = match || v == have
			}
			ok = ok && match
		}
		if ok {
			items = append(items, in.xml(st))
		}
	}
	s.mu.Unlock()
	type reservation struct {
		ReservationID string        `xml:"reservationId"`
		OwnerID       string        `xml:"ownerId"`
		Instances     []xmlInstance `xml:"instancesSet>item"`
	}
	type resp struct {
		XMLName      xml.Name      `xml:"DescribeInstancesResponse"`
		Xmlns        string        `xml:"xmlns,attr"`
		RequestID    string        `xml:"requestId"`
		Reservations []reservation `xml:"reservationSet>item"`
	}
	out := resp{Xmlns: xmlns, RequestID: requestID()}
	for _, it := range items {
		out.Reservations = append(out.Reservations, reservation{ReservationID: "r-" + it.InstanceID[2:], OwnerID: "000000000000", Instances: []xmlInstance{it}})
	}
	reply(w, out)
}

func (s *Server) terminateInstances(w http.ResponseWriter, ctx context.Context, f form) {
	ids := list(f, "InstanceId", "")
	if len(ids) == 0 {
		fail(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId")
		return
	}
	run, err := s.running(ctx)
	if err != nil {
		fail(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	s.mu.Lock()
	var missing []string
	for _, id := range ids {
		if s.instances[id] == nil {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		s.mu.Unlock()
		fail(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", ")))
		return
	}
	type change struct {
		InstanceID    string   `xml:"instanceId"`
		CurrentState  xmlState `xml:"currentState"`
		PreviousState xmlState `xml:"previousState"`
	}
	var changes []change
	var vms []string
	for _, id := range ids {
		in := s.instances[id]
		prev := in.state(run[in.vm])
		in.terminated = true
		in.md.close()
		vms = append(vms, in.vm)
		changes = append(changes, change{InstanceID: id, CurrentState: xmlState{states["shutting-down"], "shutting-down"}, PreviousState: xmlState{states[prev], prev}})
	}
	s.mu.Unlock()
	if err := s.vms.Stop(ctx, vms); err != nil {
		fail(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	type resp struct {
		XMLName   xml.Name `xml:"TerminateInstancesResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		RequestID string   `xml:"requestId"`
		Instances []change `xml:"instancesSet>item"`
	}
	reply(w, resp{Xmlns: xmlns, RequestID: requestID(), Instances: changes})
}
