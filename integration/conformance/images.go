//go:build linux

package conformance

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// The suites pull their images from public registries. Offline, the registry serves one
// busybox image (contrib/scripts/build-image.sh) under the names each suite asks for, and
// variants where a test reads the image's configuration (user, command) or a file in it.
// Tests that check content only the original image has (nginx's page, a multi-layer
// image's files, an image pinned by a foreign digest) fail on every runtime alike, which
// the report shows as a difference of none.

// imageSpec is one image to build and the names (without the registry host) it is pushed as.
type imageSpec struct {
	cmd   string            // the image's Cmd as JSON, "" for /bin/sh
	user  string            // the image's User
	files map[string]string // extra files: path in the image -> content
	names []string
	// distinct builds one image per name (their configs differ in one Env entry), for
	// tests that want an image's tags to be its own.
	distinct bool
	// criOnly images are used by critest alone.
	criOnly bool
}

const webPage = "<html><body>Welcome to the lxcri conformance web server</body></html>\n"

// predefinedGroupFiles make the user and group critest's supplemental-groups tests expect
// in their image: default-user (uid 1000) in group-defined-in-image (gid 50000).
var predefinedGroupFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":  "root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n",
}

var wwwDataFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":  "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n",
}

const (
	busyboxName = "containerd/busybox:1.36"
	pauseName   = "pause:3.10.2"
	criBusybox  = "e2e-test-images/busybox:1.29-2"
	criWeb      = "e2e-test-images/nginx:1.14-2"
	criTools    = "k8s-staging-cri-tools/"
)

func imageSpecs() []imageSpec {
	return []imageSpec{
		{names: []string{
			busyboxName, "containerd/alpine:3.14.0", "containerd/volume-copy-up:2.2",
			"containerd/volume-ownership:2.1", "e2e-test-images/resource-consumer:1.10",
		}},
		{distinct: true, criOnly: true, names: []string{
			criBusybox, "e2e-test-images/nonewprivs:1.3",
			criTools + "test-image-latest:latest", criTools + "test-image-tag:test", criTools + "test-image-tag:all",
			criTools + "test-image-1:latest", criTools + "test-image-2:latest", criTools + "test-image-3:latest",
			criTools + "test-image-tags:1", criTools + "test-image-tags:2", criTools + "test-image-tags:3",
		}},
		{cmd: `["/bin/sh","-c","trap 'exit 0' TERM; while :; do sleep 1; done"]`, names: []string{pauseName}},
		{cmd: `["/bin/httpd","-f","-p","80","-h","/www"]`, files: map[string]string{"www/index.html": webPage},
			names: []string{criWeb, "e2e-test-images/httpd:2.4.39-4", "containerd/nginx:1.27.0"}},
		{cmd: `["/bin/httpd","-f","-p","12003","-h","/www"]`, files: map[string]string{"www/index.html": webPage},
			names: []string{criTools + "hostnet-nginx-amd64:latest", criTools + "hostnet-nginx-arm64:latest"}, criOnly: true},
		{criOnly: true, user: "1002", names: []string{criTools + "test-image-user-uid:latest"}},
		{criOnly: true, user: "www-data", files: wwwDataFiles, names: []string{criTools + "test-image-user-username:latest"}},
		{criOnly: true, user: "1003:1003", names: []string{criTools + "test-image-user-uid-group:latest"}},
		{criOnly: true, user: "www-data:www-data", files: wwwDataFiles, names: []string{criTools + "test-image-user-username-group:latest"}},
		{criOnly: true, user: "1000", files: predefinedGroupFiles, names: []string{criTools + "test-image-predefined-group:latest"}},
	}
}

// Images is the set of images pushed to a Registry.
type Images struct {
	// Host is the registry's host:port.
	Host string
	// BusyboxDigest is the manifest digest of the busybox image.
	BusyboxDigest string
}

// PushImages builds every image suite uses offline and pushes it under all its names,
// through env's containerd (ctr images import, tag, push).
func PushImages(t testing.TB, env *harness.Env, reg *Registry, suite string) *Images {
	t.Helper()
	script := filepath.Join(harness.RepoRoot(), "contrib", "scripts", "build-image.sh")
	dir, err := os.MkdirTemp("", "lxcri-images-")
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	defer os.RemoveAll(dir)
	im := &Images{Host: reg.Host}
	var specs []imageSpec
	for _, s := range imageSpecs() {
		if s.criOnly && suite != SuiteCRI {
			continue
		}
		if !s.distinct {
			specs = append(specs, s)
			continue
		}
		for _, n := range s.names {
			one := s
			one.names = []string{n}
			specs = append(specs, one)
		}
	}
	for i, s := range specs {
		ref := reg.Host + "/" + s.names[0]
		out := filepath.Join(dir, fmt.Sprintf("image%d.tar", i))
		cmd := exec.Command(script, out, ref)
		if s.cmd != "" {
			cmd.Args = append(cmd.Args, s.cmd)
		}
		cmd.Env = os.Environ()
		if s.user != "" {
			cmd.Env = append(cmd.Env, "IMAGE_USER="+s.user)
		}
		if s.distinct {
			cmd.Env = append(cmd.Env, "IMAGE_ENV=LXCRI_TEST_IMAGE="+s.names[0])
		}
		if len(s.files) > 0 {
			extra := filepath.Join(dir, fmt.Sprintf("extra%d", i))
			for p, content := range s.files {
				full := filepath.Join(extra, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatalf("conformance: %v", err)
				}
				if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
					t.Fatalf("conformance: %v", err)
				}
			}
			cmd.Env = append(cmd.Env, "IMAGE_EXTRA_DIR="+extra)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("conformance: %s: %v\n%s", script, err, b)
		}
		if i == 0 {
			d, err := manifestDigest(out)
			if err != nil {
				t.Fatalf("conformance: %v", err)
			}
			im.BusyboxDigest = d
		}
		ctr(t, env, "images", "import", out)
		for _, n := range s.names {
			// critest's -registry-prefix keeps an image's path but drops its tag, and
			// pulls repo:latest.
			repo, _, _ := strings.Cut(n, ":")
			for _, name := range []string{reg.Host + "/" + n, reg.Host + "/" + repo + ":latest"} {
				if name != ref {
					ctr(t, env, "images", "tag", "--force", ref, name)
				}
				ctr(t, env, "images", "push", "--plain-http", name)
			}
		}
	}
	return im
}

func ctr(t testing.TB, env *harness.Env, args ...string) {
	t.Helper()
	stdout, stderr, code := env.Ctr(args...)
	if code != 0 {
		t.Fatalf("conformance: ctr %s: exit %d: %s%s", strings.Join(args, " "), code, stdout, stderr)
	}
}

// manifestDigest reads the digest of the first manifest of an OCI image-layout tarball.
func manifestDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s: no index.json", path)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		if h.Name != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Digest string `json:"digest"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", path, err)
		}
		if len(idx.Manifests) == 0 {
			return "", fmt.Errorf("%s: index.json lists no manifest", path)
		}
		return idx.Manifests[0].Digest, nil
	}
}

// Ref returns the full name of an image pushed as name.
func (im *Images) Ref(name string) string { return im.Host + "/" + name }

// Pause is the CRI sandbox image.
func (im *Images) Pause() string { return im.Ref(pauseName) }

// ContainerdImageList is the TOML containerd's integration/images reads with -image-list.
func (im *Images) ContainerdImageList() string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"Alpine", im.Ref("containerd/alpine:3.14.0")},
		{"BusyBox", im.Ref(busyboxName)},
		{"BusyBoxByDigest", im.Host + "/containerd/busybox@" + im.BusyboxDigest},
		{"Pause", im.Pause()},
		{"ResourceConsumer", im.Ref("e2e-test-images/resource-consumer:1.10")},
		{"VolumeCopyUp", im.Ref("containerd/volume-copy-up:2.2")},
		{"VolumeOwnership", im.Ref("containerd/volume-ownership:2.1")},
		{"ArgsEscaped", im.Ref(busyboxName)},
		{"Nginx", im.Ref("containerd/nginx:1.27.0")},
	} {
		fmt.Fprintf(&b, "%s = %q\n", kv[0], kv[1])
	}
	return b.String()
}

// CritestImages is the YAML critest reads with -test-images-file. Every other image critest
// uses is renamed into the registry by -registry-prefix. critest pulls these images through
// the same renaming, which keeps their path and pulls repo:latest, but creates containers
// from the names as given: so they are given as repo:latest.
func (im *Images) CritestImages() string {
	latest := func(name string) string {
		repo, _, _ := strings.Cut(name, ":")
		return im.Ref(repo + ":latest")
	}
	return fmt.Sprintf("defaultTestContainerImage: %s\nwebServerTestImage: %s\n", latest(criBusybox), latest(criWeb))
}
