//! The test lab: network namespaces, veth links and real BGP peers.
