package ec2test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"

	"github.com/pkgbulk/pkgbulk/lib/provider/ec2"
)

// TestSignature sends requests signed with the SDK's SigV4 signer to the
// endpoint's handler: only one signed with the right key and secret, for
// this region and service, now, over the very body it carries gets past
// the signature check (to the unknown action's error); each other is
// refused with EC2's error document and code.
func TestSignature(t *testing.T) {
	s := &Server{calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	defer srv.Close()
	const body = "Action=DescribeRegions&Version=2016-11-15"
	now := time.Now().UTC()
	for _, tc := range []struct {
		name         string
		key, secret  string
		region, svc  string
		signedAt     time.Time
		sentBody     string // "" for body
		noAuth       bool
		wantCode     string
		wantStatus   int
		mangleHeader func(h http.Header)
	}{
		{name: "right", wantCode: "InvalidAction", wantStatus: 400},
		{name: "wrong secret", secret: "not-the-secret", wantCode: "SignatureDoesNotMatch", wantStatus: 403},
		{name: "wrong access key", key: "AKIDSOMEONEELSE", wantCode: "AuthFailure", wantStatus: 401},
		{name: "stale date", signedAt: now.Add(-20 * time.Minute), wantCode: "RequestExpired", wantStatus: 400},
		{name: "future date", signedAt: now.Add(20 * time.Minute), wantCode: "RequestExpired", wantStatus: 400},
		{name: "tampered body", sentBody: "Action=DescribeRegions&Version=2016-11-16", wantCode: "SignatureDoesNotMatch", wantStatus: 403},
		{name: "other region", region: "us-east-1", wantCode: "SignatureDoesNotMatch", wantStatus: 403},
		{name: "other service", svc: "s3", wantCode: "SignatureDoesNotMatch", wantStatus: 403},
		{name: "unsigned", noAuth: true, wantCode: "AuthFailure", wantStatus: 401},
		{name: "signed header changed", wantCode: "SignatureDoesNotMatch", wantStatus: 403,
			mangleHeader: func(h http.Header) { h.Set("Content-Type", "text/plain") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, secret, region, svc, at := AccessKey, SecretKey, Region, "ec2", now
			if tc.key != "" {
				key = tc.key
			}
			if tc.secret != "" {
				secret = tc.secret
			}
			if tc.region != "" {
				region = tc.region
			}
			if tc.svc != "" {
				svc = tc.svc
			}
			if !tc.signedAt.IsZero() {
				at = tc.signedAt
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			sum := sha256.Sum256([]byte(body))
			if !tc.noAuth {
				err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key, SecretAccessKey: secret},
					req, hex.EncodeToString(sum[:]), svc, region, at)
				if err != nil {
					t.Fatal(err)
				}
			}
			if tc.sentBody != "" {
				req.Body = io.NopCloser(strings.NewReader(tc.sentBody))
				req.ContentLength = int64(len(tc.sentBody))
			}
			if tc.mangleHeader != nil {
				tc.mangleHeader(req.Header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), "<Code>"+tc.wantCode+"</Code>") {
				t.Errorf("%s\n%s\nwant %d with code %s", resp.Status, b, tc.wantStatus, tc.wantCode)
			}
		})
	}
	if n := s.calls["DescribeRegions"]; n != 1 {
		t.Errorf("%d requests reached the action, want the one signed right", n)
	}
}

// TestSDKWrongSecret: the real SDK client with a wrong secret gets
// SignatureDoesNotMatch, which it does not retry into success.
func TestSDKWrongSecret(t *testing.T) {
	s := &Server{calls: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	defer srv.Close()
	p, err := ec2.New(context.Background(), ec2.Config{Region: Region, Endpoint: srv.URL, AccessKey: AccessKey,
		SecretKey: "wrong", ImageID: "ami-0pkgbulk"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.List(context.Background(), nil)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "SignatureDoesNotMatch" {
		t.Fatalf("List with a wrong secret: %v", err)
	}
	if n := s.calls["DescribeInstances"]; n != 0 {
		t.Errorf("%d wrongly signed requests reached DescribeInstances", n)
	}
}

func FuzzParseAuth(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKID/20261205/us-test-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc")
	f.Add("AWS4-HMAC-SHA256 Credential=/, Signature=")
	f.Fuzz(func(t *testing.T, h string) {
		a, ok := parseAuth(h)
		if ok && (a.accessKey == "" || a.signature == "" || len(a.signedHeaders) == 0) {
			t.Fatalf("%q parsed to %+v", h, a)
		}
	})
}
