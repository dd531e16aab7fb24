// Package scale holds the end-to-end tests of conq on the scale-out Redis
// deployments: a master of a Redis Cluster and a Sentinel-managed primary
// killed under load (no acknowledged task lost), and workers on other
// "hosts" (network namespaces) reaching Redis over a virtual network with
// added latency.
package scale
