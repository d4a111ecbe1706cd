package lxc

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Mount options liblxc 5 turns into mount flags (src/lxc/conf.c: mount_opt, propagation_opt).
var lxcMountFlags = map[string]bool{
	"atime": true, "dev": true, "diratime": true, "exec": true, "noatime": true, "nodev": true,
	"nodiratime": true, "noexec": true, "norelatime": true, "nostrictatime": true, "nosuid": true,
	"relatime": true, "ro": true, "rw": true, "strictatime": true, "suid": true, "bind": true,
	"defaults": true, "rbind": true, "sync": true, "async": true, "dirsync": true, "lazytime": true,
	"mand": true, "nomand": true, "remount": true,
	"private": true, "shared": true, "slave": true, "unbindable": true, "rprivate": true,
	"rshared": true, "rslave": true, "runbindable": true,
}

// Options of the OCI spec (or of runc/crun) that liblxc cannot apply: it would pass them to
// the kernel as filesystem data, which a bind mount ignores and other filesystems reject.
var unsupportedMountOptions = map[string]string{
	"rro": "recursive read-only", "rrw": "recursive read-write", "rnosuid": "recursive nosuid",
	"rsuid": "recursive suid", "rnodev": "recursive nodev", "rdev": "recursive dev",
	"rnoexec": "recursive noexec", "rexec": "recursive exec", "rnoatime": "recursive noatime",
	"ratime": "recursive atime", "rrelatime": "recursive relatime", "rnorelatime": "recursive norelatime",
	"rstrictatime": "recursive strictatime", "rnostrictatime": "recursive nostrictatime",
	"rnodiratime": "recursive nodiratime", "rdiratime": "recursive diratime",
	"nosymfollow": "nosymfollow", "symfollow": "symfollow", "rnosymfollow": "recursive nosymfollow",
	"rsymfollow": "recursive symfollow", "idmap": "idmapped mounts", "ridmap": "idmapped mounts",
	"tmpcopyup": "tmpfs copy-up", "copy-symlink": "copy-symlink", "norbind": "norbind",
	// liblxc turns every mount of the container's namespace into a slave of the host's
	// before it makes the container's mounts: a mount made in the container would never
	// reach the host, so Bidirectional propagation is refused rather than given one way.
	"shared":  "propagation back to the host; liblxc makes the container's mounts slaves of the host's",
	"rshared": "propagation back to the host; liblxc makes the container's mounts slaves of the host's",
}

// lxcMountOptionWords are liblxc's own mount options (src/lxc/conf.c:
// lxc_mount_options_info). liblxc finds them with strstr anywhere in an entry's options,
// so an option merely containing one (say "x-idmap=/proc/1/ns/user", which makes liblxc
// open that path as the mount's user namespace) is taken for it: no spec option may
// contain any of them.
var lxcMountOptionWords = []string{"create=", "optional", "relative", "idmap="}

// The devpts options liblxc uses itself for /dev/pts (src/lxc/conf.c: lxc_setup_devpts_child).
var lxcDevptsOptions = map[string]bool{
	"nosuid": true, "noexec": true, "newinstance": true, "ptmxmode=0666": true, "ptmxmode=666": true,
	"mode=0620": true, "mode=620": true, "gid=5": true, "rw": true,
}

// cleanTarget checks a mount destination and returns it relative to the rootfs.
func cleanTarget(field, dst string) (string, error) {
	if dst == "" || !path.IsAbs(dst) {
		return "", fieldErr(field, "%q is not an absolute path", dst)
	}
	if err := mountField(field, dst); err != nil {
		return "", err
	}
	rel := strings.TrimPrefix(path.Clean(dst), "/")
	if rel == "" {
		return "", fieldErr(field, "cannot mount over the root directory")
	}
	return rel, nil
}

func (t *translator) stat(p string) (fs.FileMode, error) {
	if t.o.Stat == nil {
		return fs.ModeDir, nil
	}
	return t.o.Stat(p)
}

func (t *translator) mounts() error {
	devpts := false
	// The mounts so far, for mountPoint: liblxc's autodev tmpfs on /dev comes first.
	done := []mounted{{target: "dev", kind: freshMount}}
	for i, m := range t.spec.Mounts {
		f := fmt.Sprintf("mounts[%d]", i)
		target, err := cleanTarget(f+".destination", m.Destination)
		if err != nil {
			return err
		}
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			return fieldErr(f+".uidMappings", "idmapped mounts are not supported by the lxc backend")
		}
		bind := m.Type == "bind"
		for _, o := range m.Options {
			if o == "bind" || o == "rbind" {
				bind = true
			}
		}
		var opts []string
		for j, o := range m.Options {
			of := fmt.Sprintf("%s.options[%d]", f, j)
			if what, bad := unsupportedMountOptions[o]; bad {
				return fieldErr(of, "%q (%s) is not supported by LXC", o, what)
			}
			for _, w := range lxcMountOptionWords {
				if strings.Contains(o, w) {
					return fieldErr(of, "%q holds %q, which liblxc would take for its own mount option", o, w)
				}
			}
			if o == "" || strings.ContainsAny(o, ", \t\n\r\x00") {
				return fieldErr(of, "invalid mount option %q", o)
			}
			if !lxcMountFlags[o] && bind {
				return fieldErr(of, "%q is no mount flag LXC knows, and a bind mount ignores filesystem options", o)
			}
			opts = append(opts, o)
		}
		typ := m.Type
		if bind {
			typ = "none"
		}
		if typ == "" {
			return fieldErr(f+".type", "missing filesystem type")
		}
		if strings.ContainsAny(typ, " \t\n\r\x00") {
			return fieldErr(f+".type", "invalid filesystem type %q", typ)
		}

		switch m.Type {
		case "cgroup", "cgroup2":
			if path.Clean(m.Destination) != "/sys/fs/cgroup" {
				return fieldErr(f+".destination", "LXC mounts cgroups only at /sys/fs/cgroup, not %q", m.Destination)
			}
			mode := "mixed"
			for _, o := range opts {
				if o == "ro" {
					mode = "ro"
				}
			}
			for j, o := range opts {
				switch o {
				case "ro", "rw", "nosuid", "noexec", "nodev", "relatime", "rprivate", "private", "defaults":
				default:
					return fieldErr(fmt.Sprintf("%s.options[%d]", f, j), "option %q of a cgroup mount is not supported by LXC", o)
				}
			}
			if err := t.add(f, "lxc.mount.auto", "cgroup:"+mode+":force"); err != nil {
				return err
			}
			done = append(done, mounted{target: target, kind: kernelMount})
			continue
		case "devpts":
			if path.Clean(m.Destination) == "/dev/pts" && !devpts {
				std := true
				for _, o := range opts {
					if !lxcDevptsOptions[o] {
						std = false
					}
				}
				if std {
					// liblxc mounts a new devpts instance there itself, with these very
					// options, and makes /dev/ptmx point into it.
					if err := t.add(f, "lxc.pty.max", "1024"); err != nil {
						return err
					}
					devpts = true
					done = append(done, mounted{target: target, kind: freshMount})
					continue
				}
			}
		}

		if m.Type == "devpts" && path.Clean(m.Destination) == "/dev/pts" {
			t.ptmx = true // liblxc makes /dev/ptmx only for its own devpts
		}
		src := m.Source
		dir := true
		if bind {
			if src == "" {
				return fieldErr(f+".source", "a bind mount needs a source")
			}
			if !path.IsAbs(src) {
				src = path.Join(t.o.Bundle, src)
			}
			mode, err := t.stat(src)
			if err != nil {
				return fieldErr(f+".source", "%v", err)
			}
			dir = mode.IsDir()
		} else if src == "" {
			src = "none"
		}
		if err := mountField(f+".source", src); err != nil {
			return err
		}
		if strings.HasPrefix(src, "#") {
			// getmntent would skip the whole entry as a comment.
			return fieldErr(f+".source", "%q starts with '#', which makes the mount entry a comment", src)
		}
		opts = append(opts, t.mountPoint(f, done, target, dir)...)
		if err := t.add(f, "lxc.mount.entry", mountEntry(src, target, typ, opts)); err != nil {
			return err
		}
		kind := otherMount
		switch {
		case bind:
			kind = bindMount
		case freshFilesystems[typ]:
			kind = freshMount
		}
		done = append(done, mounted{target: target, kind: kind, source: src})
	}
	if !devpts {
		return t.add("mounts", "lxc.pty.max", "0")
	}
	return nil
}

// hostPath is where a container path can be looked at from the host before the container
// runs: /proc and /sys are the kernel's, the rest comes from the root filesystem.
func (t *translator) hostPath(p string) string {
	if p == "/proc" || p == "/sys" || strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/") {
		return p
	}
	return path.Join(t.o.Rootfs, p)
}

func (t *translator) maskedReadonly() error {
	l := t.spec.Linux
	for i, p := range l.MaskedPaths {
		f := fmt.Sprintf("linux.maskedPaths[%d]", i)
		target, err := cleanTarget(f, p)
		if err != nil {
			return err
		}
		mode, err := t.stat(t.hostPath(path.Clean(p)))
		if err != nil {
			continue // nothing there to mask
		}
		entry := mountEntry("/dev/null", target, "none", []string{"bind"})
		if mode.IsDir() {
			entry = mountEntry("tmpfs", target, "tmpfs", []string{"ro", "nosuid", "nodev", "noexec"})
		}
		if err := t.add(f, "lxc.mount.entry", entry); err != nil {
			return err
		}
	}
	for i, p := range l.ReadonlyPaths {
		f := fmt.Sprintf("linux.readonlyPaths[%d]", i)
		target, err := cleanTarget(f, p)
		if err != nil {
			return err
		}
		if _, err := t.stat(t.hostPath(path.Clean(p))); err != nil {
			continue
		}
		if err := t.add(f, "lxc.mount.entry", mountEntry(target, target, "none", []string{"rbind", "ro", "relative"})); err != nil {
			return err
		}
	}
	return nil
}

func (t *translator) devices() error {
	var specsArgs []string
	for i, d := range t.spec.Linux.Devices {
		f := fmt.Sprintf("linux.devices[%d]", i)
		target, err := cleanTarget(f+".path", d.Path)
		if err != nil {
			return err
		}
		typ := d.Type
		switch typ {
		case "c", "u":
			typ = "c"
		case "b", "p":
		default:
			return fieldErr(f+".type", "unknown device type %q", d.Type)
		}
		if d.Major < 0 || d.Major > 0xfff || d.Minor < 0 || d.Minor > 0xfffff {
			return fieldErr(f+".major", "device number %d:%d out of range", d.Major, d.Minor)
		}
		mode := fs.FileMode(0o666)
		if d.FileMode != nil {
			mode = *d.FileMode & fs.ModePerm
		}
		var uid, gid uint32
		if d.UID != nil {
			uid = *d.UID
		}
		if d.GID != nil {
			gid = *d.GID
		}
		if strings.ContainsAny(target, "\n") {
			return fieldErr(f+".path", "%q contains a line break", d.Path)
		}
		specsArgs = append(specsArgs, fmt.Sprintf("%s:%d:%d:%o:%d:%d:/%s", typ, d.Major, d.Minor, mode, uid, gid, target))
	}
	if t.ptmx {
		specsArgs = append(specsArgs, "ptmx")
	}
	if len(specsArgs) == 0 {
		return nil
	}
	return t.addHook("linux.devices", "autodev", append([]string{"devices"}, specsArgs...)...)
}
