package pvesim

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// This file serves the storage endpoints: the node's storage list and status, content
// list, upload (vztmpl, iso) and oci-registry-pull.

func (s *Server) routesStorage() {
	s.route("GET", "/nodes/{node}/storage", s.storageList)
	s.route("GET", "/nodes/{node}/storage/{storage}/status", s.storageStatus)
	s.route("GET", "/nodes/{node}/storage/{storage}/content", s.contentList)
	s.route("POST", "/nodes/{node}/storage/{storage}/upload", s.upload)
	s.route("POST", "/nodes/{node}/storage/{storage}/oci-registry-pull", s.ociRegistryPull)
}

func (st *storage) status() map[string]any {
	var fs syscall.Statfs_t
	syscall.Statfs(st.path, &fs)
	bs := uint64(fs.Bsize)
	return map[string]any{
		"type": st.typ, "content": strings.Join(st.content, ","), "active": 1, "enabled": 1, "shared": 0,
		"total": fs.Blocks * bs, "used": (fs.Blocks - fs.Bfree) * bs, "avail": fs.Bavail * bs,
	}
}

// storageOf finds the {storage} of a request, as storage_check_enabled.
func (s *Server) storageOf(r *request) (*storage, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	id := r.str("storage")
	st := s.storages[id]
	if st == nil {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not exist", id)
	}
	return st, nil
}

func (s *Server) storageList(r *request) (any, error) {
	if err := s.checkNode(r); err != nil {
		return nil, err
	}
	content := r.str("content")
	out := []map[string]any{}
	for _, id := range sortedKeys(s.storages) {
		st := s.storages[id]
		if r.has("storage") && r.str("storage") != id {
			continue
		}
		if content != "" {
			ok := false
			for _, c := range splitList(content) {
				ok = ok || st.has(c)
			}
			if !ok {
				continue
			}
		}
		row := st.status()
		row["storage"] = id
		out = append(out, row)
	}
	return out, nil
}

func (s *Server) storageStatus(r *request) (any, error) {
	st, err := s.storageOf(r)
	if err != nil {
		return nil, err
	}
	return st.status(), nil
}

func (s *Server) contentList(r *request) (any, error) {
	st, err := s.storageOf(r)
	if err != nil {
		return nil, err
	}
	disks := map[string]int{}
	ents, _ := os.ReadDir(filepath.Join(st.path, "images"))
	for _, e := range ents {
		var vmid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &vmid); err != nil {
			continue
		}
		for _, vol := range st.disksOf(vmid) {
			disks[vol] = vmid
		}
	}
	out := st.list(r.str("content"), r.intOr("vmid", 0), disks)
	if out == nil {
		out = []contentEntry{}
	}
	return out, nil
}

// uploadFile is the file part of a multipart upload, spooled as pveproxy spools it
// before the API method runs.
type uploadFile struct {
	path string
}

func (u *uploadFile) remove() {
	if u != nil && u.path != "" {
		os.Remove(u.path)
	}
}

func isMultipart(hr *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type"))
	return ct == "multipart/form-data"
}

// readUpload reads a multipart upload: form fields become parameters, the file part
// (named "filename") is spooled to a temporary file and its name is the filename
// parameter unless a field gives one.
func (s *Server) readUpload(hr *http.Request, pathParams map[string]string) (Params, *uploadFile, error) {
	params, err := readParams(hr, pathParams)
	if err != nil {
		return nil, nil, err
	}
	mr, err := hr.MultipartReader()
	if err != nil {
		return nil, nil, errorf(http.StatusBadRequest, "unable to parse upload - %v", err)
	}
	var up *uploadFile
	var partName string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			up.remove()
			return nil, nil, errorf(http.StatusBadRequest, "unable to parse upload - %v", err)
		}
		if part.FileName() == "" {
			b, err := io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				up.remove()
				return nil, nil, errorf(http.StatusBadRequest, "unable to parse upload - %v", err)
			}
			params[part.FormName()] = string(b)
			continue
		}
		if up != nil {
			up.remove()
			return nil, nil, errorf(http.StatusBadRequest, "more than one file in the upload")
		}
		f, err := os.CreateTemp(s.tmpDir(), "pveupload-")
		if err != nil {
			return nil, nil, err
		}
		up = &uploadFile{path: f.Name()}
		_, err = io.Copy(f, part)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			up.remove()
			return nil, nil, errorf(http.StatusBadRequest, "upload failed - %v", err)
		}
		partName = part.FileName()
	}
	if _, ok := params["filename"]; !ok && partName != "" {
		params["filename"] = partName
	}
	return params, up, nil
}

var reSafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// normalizeFilename is PVE::Storage::normalize_content_filename.
func normalizeFilename(f string) string {
	f = strings.TrimSuffix(f, "\n")
	if i := strings.LastIndexAny(f, `/\`); i >= 0 {
		f = f[i+1:]
	}
	return reSafeName.ReplaceAllString(f, "_")
}

var reISO = regexp.MustCompile(`(?i)^[^/]+\.(iso|img)$`)

func (s *Server) upload(r *request) (any, error) {
	st, err := s.storageOf(r)
	if err != nil {
		return nil, err
	}
	if r.upload == nil {
		return nil, errorf(http.StatusInternalServerError, "missing temporary file name")
	}
	content := r.str("content")
	filename := normalizeFilename(r.str("filename"))
	var dir string
	switch content {
	case "vztmpl":
		if !reVztmpl.MatchString(filename) {
			return nil, paramError(map[string]string{"filename": "wrong file extension"})
		}
		dir = st.templateDir()
	case "iso":
		if !reISO.MatchString(filename) {
			return nil, paramError(map[string]string{"filename": "wrong file extension"})
		}
		dir = filepath.Join(st.path, "template", "iso")
	default:
		return nil, paramError(map[string]string{"content": fmt.Sprintf("upload content type '%s' not allowed", content)})
	}
	if !st.has(content) {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' does not support '%s' content", st.id, content)
	}
	// the task owns the spooled file from here
	spool := r.upload.path + ".task"
	if err := os.Rename(r.upload.path, spool); err != nil {
		return nil, err
	}
	algo, want := r.str("checksum-algorithm"), strings.ToLower(r.str("checksum"))
	return s.startTask(r, "imgcopy", "", func(ctx context.Context, t *task) error {
		defer os.Remove(spool)
		if algo != "" && want != "" {
			got, err := fileChecksum(spool, algo)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("checksum mismatch: got '%s' != expect '%s'", got, want)
			}
			t.logf("calculating checksum...OK, checksum verified")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		dest := filepath.Join(dir, filename)
		t.logf("target file: %s", dest)
		if err := copyFile(spool, dest+".tmp"); err != nil {
			return err
		}
		return os.Rename(dest+".tmp", dest)
	}), nil
}

func fileChecksum(p, algo string) (string, error) {
	var h hash.Hash
	switch algo {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "sha224":
		h = sha256.New224()
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	default:
		return "", fmt.Errorf("unknown checksum algorithm '%s'", algo)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// encodeText is PVE::Tools::encode_text, which makes a task id of a file name.
func encodeText(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

func (s *Server) ociRegistryPull(r *request) (any, error) {
	st, err := s.storageOf(r)
	if err != nil {
		return nil, err
	}
	if !st.has("vztmpl") {
		return nil, errorf(http.StatusInternalServerError, "storage '%s' is not configured for content-type 'vztmpl'", st.id)
	}
	ref := r.str("reference")
	name := ref
	if r.has("filename") {
		name = r.str("filename")
	}
	filename := normalizeFilename(name) + ".tar"
	dir := st.templateDir()
	if _, err := os.Stat(filepath.Join(dir, filename)); err == nil {
		return nil, errorf(http.StatusInternalServerError, "refusing to override existing file '%s'", filename)
	}
	return s.startTask(r, "ociregistrypull", encodeText(filename), func(ctx context.Context, t *task) error {
		tmp := filepath.Join(dir, fmt.Sprintf("%s.tmp.%d", filename, os.Getpid()))
		defer os.Remove(tmp)
		t.logf("pulling %s", ref)
		if err := pullOCIArchive(ctx, ref, tmp, t); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, filename)); err != nil {
			return fmt.Errorf("unable to rename temporary file: %v", err)
		}
		return nil
	}), nil
}
