module kapauth.test/interop/harness

go 1.24
