// Package lxcstart is the client side of lxcri-start's protocol, the single-threaded C
// helper (backend/lxc/helper/lxcri-start.c) through which the backends run processes under
// liblxc without linking it: its command line and file descriptors, the spec record it
// reads, the report it writes and the terminal its exec mode sends. It holds no liblxc
// (nor any cgo), so the shim can import it and stay a static binary.
package lxcstart
