package pvesim

import (
	"mime"
	"net/http"
	"strings"
)

// This file serves the guest agent endpoints qemu-server's API2/Qemu/Agent.pm has and
// lxcri uses: ping, get-osinfo, exec, exec-status. The stand-in guest's "agent" is the
// emulator itself: it answers while the guest runs and has the agent installed.

func (s *Server) routesQemuAgent() {
	s.route("POST", "/nodes/{node}/qemu/{vmid}/agent/ping", s.agentPing)
	s.route("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo", s.agentOSInfo)
	s.route("POST", "/nodes/{node}/qemu/{vmid}/agent/exec", s.agentExec)
	s.route("GET", "/nodes/{node}/qemu/{vmid}/agent/exec-status", s.agentExecStatus)
}

// agentGuest is qemu-server's agent_available plus the QMP round trip: the agent must be
// enabled in the config, the VM running, and the agent answering.
func (s *Server) agentGuest(r *request, cmd string) (*guest, int, error) {
	if err := s.checkNode(r); err != nil {
		return nil, 0, err
	}
	v, err := s.lookupVM(r)
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	conf := copyConf(v.conf)
	s.mu.Unlock()
	if !agentEnabled(conf) {
		return nil, 0, errorf(http.StatusInternalServerError, "No QEMU guest agent configured")
	}
	g := s.vmGuest(v)
	if g == nil {
		return nil, 0, errorf(http.StatusInternalServerError, "VM %d is not running", v.vmid)
	}
	st, pid := g.state()
	if st == "frozen" {
		// a paused VM's agent cannot answer: QMP gives up after its timeout (the
		// emulator does not wait for it)
		return nil, 0, errorf(http.StatusInternalServerError, "VM %d qmp command 'guest-%s' failed - got timeout", v.vmid, cmd)
	}
	if !g.hasAgent(pid) {
		return nil, 0, errorf(http.StatusInternalServerError, "QEMU guest agent is not running")
	}
	return g, pid, nil
}

func (s *Server) agentPing(r *request) (any, error) {
	if _, _, err := s.agentGuest(r, "ping"); err != nil {
		return nil, err
	}
	return map[string]any{"result": map[string]any{}}, nil
}

func (s *Server) agentOSInfo(r *request) (any, error) {
	if _, _, err := s.agentGuest(r, "get-osinfo"); err != nil {
		return nil, err
	}
	return map[string]any{"result": map[string]any{
		"id": "pvesim", "name": "pvesim stand-in guest", "pretty-name": "pvesim stand-in guest (LXC)",
		"kernel-release": "", "machine": "x86_64",
	}}, nil
}

// agentExec is guest-exec. PVE base64-encodes input-data for the agent: from a JSON body
// (characters) every character must be one byte (U+0000..U+00FF, Perl dies on a wider
// one); from a form body the bytes go as they are.
func (s *Server) agentExec(r *request) (any, error) {
	g, _, err := s.agentGuest(r, "exec")
	if err != nil {
		return nil, err
	}
	argv, err := commandArgs(r.params["command"])
	if err != nil {
		return nil, err
	}
	var input []byte
	hasInput := r.has("input-data")
	if hasInput {
		raw := r.str("input-data")
		ct, _, _ := mime.ParseMediaType(r.http.Header.Get("Content-Type"))
		if ct == "application/json" {
			input = make([]byte, 0, len(raw))
			for _, c := range raw {
				if c > 0xFF {
					return nil, errorf(http.StatusInternalServerError, "Wide character in subroutine entry")
				}
				input = append(input, byte(c))
			}
		} else {
			input = []byte(raw)
		}
	}
	pid, err := g.exec(argv, input, hasInput)
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "Agent error: %v", err)
	}
	return map[string]any{"pid": pid}, nil
}

// commandArgs reads the command array (a JSON array, or one string that PVE splits on
// spaces for old clients).
func commandArgs(v any) ([]string, error) {
	var argv []string
	switch x := v.(type) {
	case []any:
		for _, a := range x {
			argv = append(argv, scalarString(a))
		}
	case string:
		argv = strings.Fields(x)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, paramError(map[string]string{"command": "property is missing and it is not optional"})
	}
	return argv, nil
}

func (s *Server) agentExecStatus(r *request) (any, error) {
	g, _, err := s.agentGuest(r, "exec-status")
	if err != nil {
		return nil, err
	}
	st, err := g.execStatus(r.intOr("pid", 0))
	if err != nil {
		return nil, errorf(http.StatusInternalServerError, "Agent error: %v", err)
	}
	return st, nil
}
