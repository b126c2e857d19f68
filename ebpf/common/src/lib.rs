//! Map layouts shared by the XDP program (`ebpf/xdp`) and user space
//! (`steer::fib::xdp`). `no_std`; `aya::Pod` impls behind the `user` feature.
#![no_std]
