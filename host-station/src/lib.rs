//! The host as a station on the pool's Ethernet, like an Amoeba workstation with
//! a FLIP driver: its port on the switch ([`host_port`]), FLIP RPC as a client
//! ([`rpc_client`]) and as a server ([`rpc_server`]), group communication
//! ([`group_client`]), the terminals it serves to the programs it starts
//! ([`tty_server`]), the bootstrap server they tell what they are and what they
//! found ([`bootstrap_server`]), and an echo responder ([`echo`]).

pub mod bootstrap_server;
pub mod echo;
pub mod group_client;
pub mod host_port;
pub mod rpc_client;
pub mod rpc_server;
pub mod tty_server;

pub use host_port::HostPort;
