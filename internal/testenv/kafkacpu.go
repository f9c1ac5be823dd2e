package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// KafkaCPU is the CPU time the broker listening on addr (host:port) has
// used so far, found through the socket it listens on; false when no
// process of this machine that we may read listens there. The broker is
// shared: other clients' work counts too.
func KafkaCPU(addr string) (time.Duration, bool) {
	pid, ok := listenerPID(addr)
	if !ok {
		return 0, false
	}
	return procCPU(pid)
}

// listenerPID finds the process holding the listening socket of addr's
// port: its inode in /proc/net/tcp{,6}, then the fd that points to it.
func listenerPID(addr string) (int, bool) {
	_, p, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		return 0, false
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeningInodes(f, port, inodes)
	}
	if len(inodes) == 0 {
		return 0, false
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if holdsSocket(pid, inodes) {
			return pid, true
		}
	}
	return 0, false
}

// listeningInodes adds the inodes of the sockets listening on port listed
// in file (rows: sl local_address rem_address st ... inode).
func listeningInodes(file string, port int, into map[string]bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" { // 0A: LISTEN
			into[fs[9]] = true
		}
	}
}

func holdsSocket(pid int, inodes map[string]bool) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		l, err := os.Readlink(dir + "/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
			return true
		}
	}
	return false
}
