package proxmox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	goprox "github.com/luthermonson/go-proxmox"
)

// Error is a failed PVE call or task. Its text names the request and carries PVE's own
// message; errors.Is matches the errdefs code it was classified as.
type Error struct {
	// Op is the request, e.g. "POST /nodes/pve/lxc/100/status/start", or the task.
	Op string
	// Status is the HTTP status, 0 when there was no answer or a task failed.
	Status int
	// Message says what went wrong, with PVE's text.
	Message string
	kind    error
	cause   error
}

func (e *Error) Error() string { return "proxmox: " + e.Op + ": " + e.Message }

// Unwrap gives the errdefs code and the underlying error.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// PVE says a few definite things about a guest with a 500 rather than a 4xx (pve-guest-common
// AbstractConfig.pm, pve-container API2/LXC*.pm): they are answers, not outages, so they are
// neither retried nor reported as Unavailable.
var definites = []struct {
	re   *regexp.Regexp
	kind error
}{
	{regexp.MustCompile(`(?i)\bconfiguration file '[^']*' does not exist|\bdoes not exist\b|\bno such\b|\bInvalid parameter 'pid'`), errdefs.ErrNotFound},
	{regexp.MustCompile(`(?i)\balready exists\b`), errdefs.ErrAlreadyExists},
	{regexp.MustCompile(`(?i)\b(already running|not running|is locked|is a template|is running)\b|snapshot feature is not available|\bcan't (rollback|snapshot)|no QEMU guest agent configured|linked clone feature is not supported|\bnot allowed for linked clones\b|\byou can't start a vm if it's a template\b`), errdefs.ErrFailedPrecondition},
}

func definite(msg string) error {
	for _, d := range definites {
		if d.re.MatchString(msg) {
			return d.kind
		}
	}
	return nil
}

// classify turns what go-proxmox or the transport returned into an *Error with an errdefs
// code. The token's secret is in no input: go-proxmox's errors hold the status and body of
// the answer, the transport's the URL.
func (c *Client) classify(ctx context.Context, k call, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: k.op(), cause: err}
	var apiErr *goprox.APIError
	switch {
	case errors.As(err, &apiErr):
		e.Status = apiErr.StatusCode
		e.Message = apiMessage(apiErr)
		switch s := apiErr.StatusCode; {
		case s == http.StatusUnauthorized:
			e.kind = errdefs.ErrUnauthenticated
			e.Message += fmt.Sprintf(" (PVE rejected API token %s: check [proxmox] token_id, the secret in token_secret_file and that the token is neither expired nor deleted)", c.tokenID)
		case s == http.StatusForbidden:
			e.kind = errdefs.ErrPermissionDenied
			if k.need != "" {
				e.Message += fmt.Sprintf(" (API token %s needs %s; with privilege separation the token's own ACL counts, not its user's)", c.tokenID, k.need)
			}
		case s == http.StatusBadRequest:
			e.kind = errdefs.ErrInvalidArgument
			if d := definite(e.Message); errors.Is(d, errdefs.ErrNotFound) || errors.Is(d, errdefs.ErrAlreadyExists) {
				e.kind = d
			}
		case s == http.StatusNotFound || s == http.StatusNotImplemented:
			e.kind = errdefs.ErrNotFound
			if s == http.StatusNotImplemented {
				e.kind = errdefs.ErrNotImplemented
			}
		case s >= 500:
			e.kind = definite(e.Message)
			if e.kind == nil {
				e.kind = errdefs.ErrUnavailable
				e.Message += fmt.Sprintf(" (after %d attempts)", c.retry.attempts)
			}
		default:
			e.kind = errdefs.ErrUnknown
		}
	case errors.Is(err, context.DeadlineExceeded):
		e.kind = context.DeadlineExceeded
		e.Message = fmt.Sprintf("no answer within %s", c.timeout)
		if ctx.Err() == nil {
			e.Message = "no answer before the caller's deadline"
		}
	case errors.Is(err, context.Canceled):
		e.kind = context.Canceled
		e.Message = "canceled"
	case isTLSError(err):
		e.kind = errdefs.ErrFailedPrecondition
		e.Message = fmt.Sprintf("TLS verification of %s failed: %v (set [proxmox] ca_file to the node's CA, or fingerprint to its certificate's)", c.baseURL, rootCause(err))
	case isDialError(err):
		e.kind = errdefs.ErrUnavailable
		e.Message = fmt.Sprintf("cannot reach the PVE API at %s: %v (after %d attempts)", c.baseURL, rootCause(err), c.retry.attempts)
	default:
		e.kind = errdefs.ErrUnavailable
		e.Message = fmt.Sprintf("connection to the PVE API failed: %v", rootCause(err))
		if k.method == http.MethodPost && !k.replayable {
			e.Message += " (not repeated: PVE may or may not have carried the request out)"
		}
	}
	return e
}

// apiMessage is PVE's message with its per-parameter errors, in a stable order.
func apiMessage(a *goprox.APIError) string {
	msg := strings.TrimSpace(a.Message)
	if msg == "" {
		msg = http.StatusText(a.StatusCode)
	}
	msg = fmt.Sprintf("%d %s", a.StatusCode, msg)
	if len(a.Errors) > 0 {
		keys := make([]string, 0, len(a.Errors))
		for k := range a.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ": " + a.Errors[k]
		}
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return msg
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isTLSError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var fp *fingerprintError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &fp)
}

// rootCause strips url.Error's "Get \"https://...\":" prefix, which repeats the request.
func rootCause(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}
