// A stand-in for Tencent Cloud's VPC SDK, which the Go module proxy does not
// serve. flannel links its tencent-vpc backend unconditionally; this image
// uses the host-gw backend, and the stub makes tencent-vpc fail with a clear
// error if anyone selects it.
module github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc

go 1.16
