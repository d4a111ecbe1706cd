package pvesim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// apiError is an error answered the way pve-http-server answers it: the status code, the
// message (with its trailing newline) as the reason phrase and in the body, and the
// per-parameter errors when there are any.
type apiError struct {
	Code   int
	Msg    string
	Errors map[string]string
}

func (e *apiError) Error() string { return strings.TrimSuffix(e.Msg, "\n") }

// errorf is PVE's `die "...\n"` inside an API method: an HTTP error with that message.
func errorf(code int, format string, a ...any) *apiError {
	msg := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	return &apiError{Code: code, Msg: msg}
}

// paramError is raise_param_exc: 400 "Parameter verification failed." with the errors.
func paramError(errs map[string]string) *apiError {
	return &apiError{Code: http.StatusBadRequest, Msg: "Parameter verification failed.\n", Errors: errs}
}

// handler serves one method of one schema path. Its result is the "data" of the answer.
type handler func(r *request) (any, error)

// request is one validated API call.
type request struct {
	ctx    context.Context
	s      *Server
	verb   string
	path   string // below /api2/json
	method *Method
	params Params
	user   string // the token's user id, user@realm!name, as PVE puts it in UPIDs
	http   *http.Request
	// upload is the file of a multipart upload, stored under the emulator's directory.
	upload *uploadFile
	// fault is the task fault chosen for this call, if any.
	fault *Fault
	// extra holds top-level envelope fields beside data (e.g. "total" of a task log).
	extra map[string]any
}

func (r *request) has(name string) bool {
	_, ok := r.params[name]
	return ok
}

func (r *request) str(name string) string {
	v, ok := r.params[name]
	if !ok {
		return ""
	}
	return scalarString(v)
}

func (r *request) intOr(name string, def int) int {
	v, ok := r.params[name]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimPrefix(scalarString(v), "+"))
	if err != nil {
		return def
	}
	return n
}

// boolOr reads a boolean the schema already checked: JSON true/false or "1"/"0".
func (r *request) boolOr(name string, def bool) bool {
	v, ok := r.params[name]
	if !ok {
		return def
	}
	return scalarString(v) == "1"
}

// readParams collects a request's parameters as pve-http-server does: the query string,
// then the body (form or JSON object), then the path parameters.
func readParams(hr *http.Request, pathParams map[string]string) (Params, error) {
	p := Params{}
	for k, vs := range hr.URL.Query() {
		if len(vs) > 0 {
			p[k] = vs[len(vs)-1]
		}
	}
	if hr.Method == http.MethodPost || hr.Method == http.MethodPut || hr.Method == http.MethodDelete {
		ct, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type"))
		switch ct {
		case "application/json":
			body, err := io.ReadAll(io.LimitReader(hr.Body, 64<<20))
			if err != nil {
				return nil, err
			}
			if len(bytes.TrimSpace(body)) > 0 {
				var obj map[string]any
				d := json.NewDecoder(bytes.NewReader(body))
				d.UseNumber()
				if err := d.Decode(&obj); err != nil {
					return nil, errorf(http.StatusBadRequest, "unable to parse JSON body - %v", err)
				}
				for k, v := range obj {
					if v == nil {
						continue
					}
					p[k] = v
				}
			}
		case "multipart/form-data":
			// read by the upload handler
		default:
			body, err := io.ReadAll(io.LimitReader(hr.Body, 64<<20))
			if err != nil {
				return nil, err
			}
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "unable to parse form body - %v", err)
			}
			for k, vs := range form {
				if len(vs) > 0 {
					p[k] = vs[len(vs)-1]
				}
			}
		}
	}
	for k, v := range pathParams {
		p[k] = v
	}
	return p, nil
}

// writeData answers 200 with PVE's envelope.
func writeData(w http.ResponseWriter, data any, extra map[string]any) {
	env := map[string]any{"data": data}
	for k, v := range extra {
		env[k] = v
	}
	b, err := json.Marshal(env)
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "unable to encode result - %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// writeError answers an error as pve-http-server does: the message is the HTTP reason
// phrase ("HTTP/1.1 400 Parameter verification failed.") and the body is
// {"data":null,"message":"...\n","errors":{...}} (errors only when there are some).
// net/http always writes the standard reason phrase, so the answer is written on the
// hijacked connection, which is then closed (PVE answers errors the same way).
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errorf(http.StatusInternalServerError, "%s", err.Error())
	}
	env := map[string]any{"data": nil, "message": ae.Msg}
	if len(ae.Errors) > 0 {
		env["errors"] = ae.Errors
	}
	body, _ := json.Marshal(env)
	reason, _, _ := strings.Cut(strings.TrimSuffix(ae.Msg, "\n"), "\n")
	reason = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, reason)
	if reason == "" {
		reason = http.StatusText(ae.Code)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(ae.Code)
		w.Write(body)
		return
	}
	conn, rw, herr := hj.Hijack()
	if herr != nil {
		return
	}
	defer conn.Close()
	writeRaw(rw.Writer, ae.Code, reason, body)
}

func writeRaw(w *bufio.Writer, code int, reason string, body []byte) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", code, reason)
	fmt.Fprintf(w, "Content-Type: application/json;charset=UTF-8\r\n")
	fmt.Fprintf(w, "Content-Length: %d\r\n", len(body))
	fmt.Fprintf(w, "Connection: close\r\n\r\n")
	w.Write(body)
	w.Flush()
}
