//go:build linux

package conformance

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/integration/zfstest"
)

// Options select and bound one Run.
type Options struct {
	Suite   string
	Runtime Runtime
	// Focus is a regular expression selecting tests: -test.run for containerd's suite,
	// -ginkgo.focus for critest. "" runs the whole suite.
	Focus string
	// Skip is a regular expression of tests not to run (-test.skip, -ginkgo.skip).
	Skip string
	// Timeout bounds the suite binary; it is killed (and its unfinished tests are NotRun)
	// when it is exceeded.
	Timeout time.Duration
	// OutDir receives the Result (JSON) and the suite's raw output and logs.
	OutDir string
	// ToolsDir holds containerd, ctr, containerd-client.test, critest and registry.
	ToolsDir string
	// Progress, when set, gets one line per step.
	Progress func(format string, args ...any)
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(format, args...)
	}
}

// Tool binaries built by contrib/scripts/setup-conformance.sh.
const (
	ClientTestBinary = "containerd-client.test"
	CritestBinary    = "critest"
	RegistryBinary   = "registry"

	setupHint = "run `make conformance-setup` (contrib/scripts/setup-conformance.sh)"
	// criHandler is the CRI runtime handler of the runtime under test.
	criHandler = "conformance"
)

// Run runs one suite against one runtime and stores its Result in o.OutDir. Everything it
// starts (registry, containerd, zfs-fuse pool) is removed by t's cleanup.
func Run(ctx context.Context, t testing.TB, o Options) (*Result, error) {
	t.Helper()
	if err := CheckSuite(o.Suite); err != nil {
		return nil, err
	}
	suiteBin := ClientTestBinary
	if o.Suite == SuiteCRI {
		suiteBin = CritestBinary
	}
	for _, b := range []string{suiteBin, RegistryBinary} {
		if fi, err := os.Stat(filepath.Join(o.ToolsDir, b)); err != nil || fi.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("conformance: %s not found in %s; %s", b, o.ToolsDir, setupHint)
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		return nil, fmt.Errorf("conformance: go not on PATH (its test2json records the client suite): %w", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	// base + ".test2json" or ".junit.xml" is RawOutput.
	base := filepath.Join(o.OutDir, o.Suite+"--"+o.Runtime.Key)

	work, err := os.MkdirTemp("/run", "lxcri-conformance-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(work) })

	reg := StartRegistry(t, filepath.Join(o.ToolsDir, RegistryBinary))
	o.progress("registry on %s", reg.Host)

	var env []string
	var hostConfig string
	if o.Runtime.LXCRI != "" {
		// lxcri's checkpoints live on ZFS: a zfs-fuse pool on a sparse file, its
		// translation layer first on PATH (which the daemons and shims inherit).
		pool, _ := zfstest.Pool(t, zfstest.WithSize(1<<30))
		o.progress("zfs pool %s", pool)
		hostConfig = filepath.Join(work, "lxcri.toml")
		body := fmt.Sprintf("state_dir = %q\n%s\n[zfs]\ndataset = %q\n", filepath.Join(work, "state"), o.Runtime.LXCRI, pool+"/lxcri")
		if err := os.WriteFile(hostConfig, []byte(body), 0o644); err != nil {
			return nil, err
		}
		env = append(env, "LXCRI_CONFIG="+hostConfig)
	}

	opts := []harness.Option{
		harness.WithDaemonEnv(env...),
		harness.WithTimeout(2 * time.Minute),
		harness.WithoutImage(),
	}
	if o.Runtime.LXCRI == "" {
		opts = append(opts, harness.WithoutShim())
	}
	var cri *harness.Env
	// The sandbox image's name holds the registry's port, known only now.
	cri = harness.Start(t, append(opts,
		harness.WithSandboxImage(reg.Host+"/"+pauseName),
		harness.WithConfig(criRuntimeConfig(o.Runtime)),
	)...)
	o.progress("containerd on %s", cri.Socket)
	if o.Suite == SuiteCRI {
		if err := criNetwork(t, cri); err != nil {
			return nil, err
		}
	}
	images := PushImages(t, cri, reg, o.Suite)
	o.progress("images pushed (busybox %s)", images.BusyboxDigest)

	res := &Result{Suite: o.Suite, Runtime: o.Runtime.Key, RuntimeName: o.Runtime.Name, Focus: o.Focus, Started: time.Now().UTC()}
	switch o.Suite {
	case SuiteClient:
		err = runClient(ctx, o, env, images, work, base, res)
	case SuiteCRI:
		err = runCritest(ctx, o, cri, images, work, base, res)
	}
	res.Duration = time.Since(res.Started).Round(time.Second)
	if err != nil {
		res.Error = err.Error()
	}
	if serr := res.Save(o.OutDir); serr != nil {
		return res, errors.Join(err, serr)
	}
	return res, err
}

// criRuntimeConfig adds the runtime under test as CRI handler criHandler. lxcri reads its
// configuration from LXCRI_CONFIG in containerd's environment, as on a host.
func criRuntimeConfig(r Runtime) string {
	return fmt.Sprintf(`[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%s]
  runtime_type = '%s'
`, criHandler, r.Type)
}

// runClient runs containerd's client suite, which starts its own containerd (found on
// PATH: the tools folder's, with the lxcri shim beside it) with TEST_RUNTIME as the
// default runtime.
func runClient(ctx context.Context, o Options, env []string, im *Images, work, base string, res *Result) error {
	list := filepath.Join(work, "image-list.toml")
	if err := os.WriteFile(list, []byte(im.ContainerdImageList()), 0o644); err != nil {
		return err
	}
	args := []string{"tool", "test2json", "-t", "-p", SuiteClient, filepath.Join(o.ToolsDir, ClientTestBinary),
		"-test.v=test2json", "-test.root", "-test.timeout=" + o.Timeout.String(), "-image-list=" + list}
	if o.Focus != "" {
		args = append(args, "-test.run="+o.Focus)
	}
	if skip := skipPattern(SuiteClient, o.Skip); skip != "" {
		args = append(args, "-test.skip="+skip)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = work
	path := strings.Join([]string{harness.ShimDir(), o.ToolsDir, os.Getenv("PATH")}, string(os.PathListSeparator))
	// TEST_IMAGE_LIST: setup-conformance.sh makes it the default of -image-list, which the
	// suite's package variables read before the flag is parsed.
	cmd.Env = append(append(os.Environ(), "PATH="+path, "TEST_RUNTIME="+o.Runtime.Type, "TEST_IMAGE_LIST="+list), env...)
	out, err := os.Create(base + ".json.log")
	if err != nil {
		return err
	}
	defer out.Close()
	events, err := os.OpenFile(base+".test2json", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer events.Close()
	cmd.Stdout = events
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if found, err := clientLeftovers(0); err != nil || found != "" {
		o.progress("before the suite: removed what an earlier run left (%s; %v)", found, err)
	}
	o.progress("running %s against %s", SuiteClient, o.Runtime.Key)
	runErr := cmd.Run()
	res.ExitCode = cmd.ProcessState.ExitCode()
	found, lerr := clientLeftovers(cmd.Process.Pid)
	if found != "" {
		o.progress("removed what the suite left: %s", found)
	}
	if lerr != nil {
		o.progress("removing what the suite left: %v", lerr)
	}
	if _, err := events.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tests, err := ParseTestJSON(events)
	if err != nil {
		return err
	}
	res.Tests = tests
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		return fmt.Errorf("%s: %w", SuiteClient, runErr)
	}
	if len(tests) == 0 {
		return fmt.Errorf("%s ran no test (exit %d); see %s.json.log", SuiteClient, res.ExitCode, base)
	}
	return nil
}

// runCritest runs critest against env's CRI socket with the handler of the runtime under test.
func runCritest(ctx context.Context, o Options, env *harness.Env, im *Images, work, base string, res *Result) error {
	imgs := filepath.Join(work, "critest-images.yaml")
	if err := os.WriteFile(imgs, []byte(im.CritestImages()), 0o644); err != nil {
		return err
	}
	junit := base + ".junit.xml"
	_ = os.Remove(junit)
	sock := "unix://" + env.Socket
	args := []string{
		"-runtime-endpoint=" + sock, "-image-endpoint=" + sock,
		"-runtime-handler=" + criHandler,
		"-registry-prefix=" + im.Host, "-test-images-file=" + imgs,
		"-ginkgo.junit-report=" + junit, "-ginkgo.timeout=" + o.Timeout.String(),
		"-ginkgo.no-color", "-ginkgo.v",
		"-test.timeout=" + (o.Timeout + time.Minute).String(),
	}
	if o.Focus != "" {
		args = append(args, "-ginkgo.focus="+o.Focus)
	}
	if skip := skipPattern(SuiteCRI, o.Skip); skip != "" {
		args = append(args, "-ginkgo.skip="+skip)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(o.ToolsDir, CritestBinary), args...)
	cmd.Dir = work
	out, err := os.Create(base + ".log")
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	o.progress("running %s against %s", SuiteCRI, o.Runtime.Key)
	runErr := cmd.Run()
	res.ExitCode = cmd.ProcessState.ExitCode()
	f, err := os.Open(junit)
	if err != nil {
		return fmt.Errorf("%s wrote no JUnit report (exit %d, %v); see %s.log", SuiteCRI, res.ExitCode, runErr, base)
	}
	defer f.Close()
	tests, err := ParseJUnit(f)
	if err != nil {
		return err
	}
	res.Tests = tests
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		return fmt.Errorf("%s: %w", SuiteCRI, runErr)
	}
	return nil
}

// criNetwork gives the CRI pods a CNI network: a bridge of its own with a gateway (critest
// reaches pods and their host ports from the host) and port mapping, removed at the end.
func criNetwork(t testing.TB, env *harness.Env) error {
	var rnd [2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	bridge := fmt.Sprintf("lxcc%02x%02x", rnd[0], rnd[1])
	// Registered before the harness's cleanup runs (cleanups run last first), so the bridge
	// goes once the pods are gone.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			t.Logf("conformance: ip link del %s: %v: %s", bridge, err, out)
		}
	})
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lxcri-conformance","plugins":[
  {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.%d.%d.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
  {"type":"portmap","capabilities":{"portMappings":true}}]}`,
		bridge, 200+int(rnd[0])%50, rnd[1], filepath.Join(env.Root, "cni", "ipam"))
	if err := os.WriteFile(filepath.Join(env.Root, "cni", "net.d", "10-lxcri-conformance.conflist"), []byte(conf), 0o644); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := env.Crictl("info")
		var info struct {
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status bool   `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		}
		_ = json.Unmarshal([]byte(out), &info)
		for _, c := range info.Status.Conditions {
			if c.Type == "NetworkReady" && c.Status {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("conformance: CRI network not ready after 30s: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
