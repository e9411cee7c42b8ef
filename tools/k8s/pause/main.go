// pause is the pod sandbox's process for `make cluster-test`: there is no
// registry here to pull registry.k8s.io/pause from, so containerd's sandbox
// image is this static binary in a FROM scratch image. It holds the pod's
// namespaces, reaps orphans (it is PID 1 of the pod) and exits on TERM or INT.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
