package zfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
)

// The first record of a send stream (struct dmu_replay_record, a DRR_BEGIN), as OpenZFS
// and zfs-fuse write it: the fields CheckPlainStream reads, at their byte offsets.
const (
	beginRecordLen    = 312 // sizeof(dmu_replay_record_t)
	offRecordType     = 0   // drr_type, uint32: DRR_BEGIN = 0
	offMagic          = 8   // drr_begin.drr_magic, uint64
	offVersionInfo    = 16  // drr_begin.drr_versioninfo, uint64: header type in bits 0-1
	offObjsetType     = 32  // drr_begin.drr_type, uint32: DMU_OST_ZFS = 2
	offFromGUID       = 48  // drr_begin.drr_fromguid, uint64: 0 for a full stream
	streamMagic       = 0x2F5bacbac
	hdrTypeMask       = 0x3
	hdrSubstream      = 1 // one dataset, data only (`zfs send snap`)
	hdrCompoundStream = 2 // an nvlist of properties and datasets first (`zfs send -p`, -R)
	objsetZFS         = 2
)

// CheckPlainStream reads the head of a send stream from r and fails (InvalidArgument)
// unless it is what `zfs send <snapshot>` writes, as Store.Send does: a full stream of one
// filesystem. That carries the filesystem's data only, never properties (which a
// compound stream, from `zfs send -p` or -R, carries along with descendants), and needs
// no base (as an incremental one does). It returns a reader that yields the whole stream,
// the head included.
func CheckPlainStream(r io.Reader) (io.Reader, error) {
	head := make([]byte, beginRecordLen)
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("not a zfs send stream: shorter than its first record (%d bytes): %w", beginRecordLen, errdefs.ErrInvalidArgument)
		}
		return nil, err
	}
	if err := checkBegin(head); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return io.MultiReader(bytes.NewReader(head), r), nil
}

func checkBegin(head []byte) error {
	var order binary.ByteOrder = binary.LittleEndian
	switch {
	case binary.LittleEndian.Uint64(head[offMagic:]) == streamMagic:
	case binary.BigEndian.Uint64(head[offMagic:]) == streamMagic: // sent by a big-endian host
		order = binary.BigEndian
	default:
		return errors.New("not a zfs send stream (no stream magic in its first record)")
	}
	if t := order.Uint32(head[offRecordType:]); t != 0 {
		return fmt.Errorf("not a zfs send stream (first record has type %d, not BEGIN)", t)
	}
	switch h := order.Uint64(head[offVersionInfo:]) & hdrTypeMask; h {
	case hdrSubstream:
	case hdrCompoundStream:
		return errors.New("a stream with properties or several datasets (zfs send -p or -R): only a plain `zfs send <snapshot>` stream is accepted")
	default:
		return fmt.Errorf("zfs send stream of unknown header type %d", h)
	}
	if t := order.Uint32(head[offObjsetType:]); t != objsetZFS {
		return fmt.Errorf("zfs send stream of a dataset of type %d, not a filesystem", t)
	}
	if order.Uint64(head[offFromGUID:]) != 0 {
		return errors.New("an incremental zfs send stream: only a full stream is accepted")
	}
	return nil
}
