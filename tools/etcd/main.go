// etcd 3.6 for `make cluster-test`: Debian 12's etcd-server 3.4.23 is older
// than kube-apiserver 1.34 expects (watch progress requests), and etcd's own
// main package cannot be built with `go install` (its go.mod has replaces).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
