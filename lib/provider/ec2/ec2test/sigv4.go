package ec2test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// maxSkew is how far a request's X-Amz-Date may be from the server's
// clock, as on AWS.
const maxSkew = 5 * time.Minute

// authError is why a request's signature was refused: EC2's error code,
// message and HTTP status.
type authError struct {
	status        int
	code, message string
}

func (e *authError) Error() string { return e.code + ": " + e.message }

// sigv4Auth is the Authorization header of a request signed with
// AWS Signature Version 4.
type sigv4Auth struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

// parseAuth reads "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b, Signature=HEX".
func parseAuth(h string) (sigv4Auth, bool) {
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return sigv4Auth{}, false
	}
	var a sigv4Auth
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return sigv4Auth{}, false
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return sigv4Auth{}, false
			}
			a.accessKey, a.date, a.region, a.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
		case "Signature":
			a.signature = v
		}
	}
	return a, a.accessKey != "" && a.signature != "" && len(a.signedHeaders) > 0
}

// verify checks r's SigV4 signature (body is r's body, already read)
// the way EC2 does: the access key is AccessKey, the credential's scope
// is this Region and service ec2 on the request's date, the date is
// within maxSkew of now, and the signature recomputed with SecretKey by
// the SDK's own signer from the method, path, query, signed headers and
// the body's hash is the one given.
func verify(r *http.Request, body []byte, now time.Time) *authError {
	bad := func(status int, code, msg string) *authError { return &authError{status, code, msg} }
	a, ok := parseAuth(r.Header.Get("Authorization"))
	if !ok {
		return bad(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	if a.accessKey != AccessKey {
		return bad(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return bad(http.StatusBadRequest, "IncompleteSignature", "The request must contain a valid X-Amz-Date header")
	}
	if d := now.Sub(when); d > maxSkew || d < -maxSkew {
		return bad(http.StatusBadRequest, "RequestExpired", fmt.Sprintf("Request has expired: signed at %s, now %s", when.Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	if a.date != when.Format("20060102") || a.region != Region || a.service != "ec2" {
		return bad(http.StatusForbidden, "SignatureDoesNotMatch", fmt.Sprintf("Credential should be scoped to a valid region and service ec2 on %s, not %s/%s/%s", when.Format("20060102"), a.date, a.region, a.service))
	}
	// The request again, with only what was signed, signed again.
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	re, err := http.NewRequest(r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return bad(http.StatusBadRequest, "InvalidRequest", err.Error())
	}
	re.Host = r.Host
	re.ContentLength = int64(len(body))
	for _, h := range a.signedHeaders {
		switch h {
		case "host", "content-length":
		default:
			vs := r.Header.Values(h)
			if len(vs) == 0 {
				return bad(http.StatusForbidden, "SignatureDoesNotMatch", "signed header "+h+" is missing")
			}
			re.Header[http.CanonicalHeaderKey(h)] = vs
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), "ec2", Region, when); err != nil {
		return bad(http.StatusInternalServerError, "InternalError", err.Error())
	}
	want, ok := parseAuth(re.Header.Get("Authorization"))
	if !ok || strings.Join(want.signedHeaders, ";") != strings.Join(a.signedHeaders, ";") ||
		!hmac.Equal([]byte(want.signature), []byte(a.signature)) {
		return bad(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}

// authorize reads r's body (at most 1 MiB; r.Body is then that body
// again) and checks its signature; on a refusal it writes EC2's error
// document and returns false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		fail(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if e := verify(r, body, time.Now()); e != nil {
		fail(w, e.status, e.code, e.message)
		return false
	}
	return true
}
