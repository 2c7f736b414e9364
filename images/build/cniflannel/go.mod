// Module cniflannel builds github.com/containernetworking/plugins v0.9.1 for the kind images; see images/versions.go.
module kubevirtci.local/images/build/cniflannel

go 1.16

require github.com/containernetworking/plugins v0.9.1
