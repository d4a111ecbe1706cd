package proxmox

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/errdefs"
)

// maxSecretSize bounds what is read from token_secret_file: PVE's secrets are UUIDs.
const maxSecretSize = 4096

// readSecret reads the API token's secret once. The file must be a regular file that
// neither group nor others may access: the secret grants whatever the token may do on the
// node. No error quotes the file's content.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("[proxmox] token_secret_file %s does not exist: %w", path, errdefs.ErrNotFound)
		}
		return "", fmt.Errorf("[proxmox] token_secret_file %s: %v: %w", path, unwrapPathError(err), errdefs.ErrFailedPrecondition)
	}
	defer f.Close()
	// Checked on the open file, so a rename in between cannot swap what is read.
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("[proxmox] token_secret_file %s: %v: %w", path, err, errdefs.ErrFailedPrecondition)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("[proxmox] token_secret_file %s is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("[proxmox] token_secret_file %s has mode %04o: group and others must have no access (chmod 600): %w", path, perm, errdefs.ErrFailedPrecondition)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("[proxmox] token_secret_file %s: %v: %w", path, err, errdefs.ErrFailedPrecondition)
	}
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("[proxmox] token_secret_file %s is larger than %d bytes: %w", path, maxSecretSize, errdefs.ErrInvalidArgument)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("[proxmox] token_secret_file %s is empty: %w", path, errdefs.ErrInvalidArgument)
	}
	// The secret goes into an HTTP header after "PVEAPIToken=ID=": PVE's parser stops at
	// ';', and a control character would split the header.
	for _, r := range secret {
		if r <= ' ' || r == ';' || r == 0x7f {
			return "", fmt.Errorf("[proxmox] token_secret_file %s holds whitespace, a control character or ';' (expected one token secret): %w", path, errdefs.ErrInvalidArgument)
		}
	}
	return secret, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
