module kapauth.test/interop/chronograf

go 1.24

require (
	github.com/influxdata/chronograf v1.10.2
	kapauth.test/interop/harness v0.0.0
)

require (
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/golang-jwt/jwt/v4 v4.0.0 // indirect
	github.com/google/uuid v1.1.2 // indirect
	github.com/influxdata/influxdb v1.8.4 // indirect
	github.com/influxdata/kapacitor v1.5.10-0.20210518140415-452f2b236610 // indirect
	github.com/pkg/errors v0.9.1 // indirect
)

replace kapauth.test/interop/harness => ../harness

// Chronograf v1.10.2's own replace directives (its influx package needs influxdb v1.1.5's
// influxql, which is why Chronograf cannot share a module with Kapacitor v1.7.6).
replace (
	github.com/coreos/go-systemd => github.com/coreos/go-systemd/v22 v22.0.0
	github.com/influxdata/flux => github.com/influxdata/flux v0.65.1
	github.com/influxdata/influxdb => github.com/influxdata/influxdb v1.1.5
	github.com/prometheus/prometheus => github.com/goller/prometheus v1.6.1-0.20170502220046-58298e738211
)
