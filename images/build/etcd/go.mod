// Module etcd builds go.etcd.io/etcd/server/v3 v3.5.0 for the kind images; see images/versions.go.
module kubevirtci.local/images/build/etcd

go 1.16

require go.etcd.io/etcd/server/v3 v3.5.0
