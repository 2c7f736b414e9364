// Module coredns builds github.com/coredns/coredns v1.8.4 for the kind images; see images/versions.go.
module kubevirtci.local/images/build/coredns

go 1.16

require github.com/coredns/coredns v1.8.4
