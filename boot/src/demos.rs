//! The demos: RPC, the replicated counter, ordered chat, and the sequencer's crash.

use crate::cli::*;
use crate::running::*;
use amoeba_ipc::interfaces::echo;
use anyhow::{Context, Result, bail};
use qemu_pool::PoolConfig;
use std::time::{Duration, Instant};

pub(crate) fn rpc_demo(args: &PoolArgs) -> Result<()> {
    let config = PoolConfig::new(&args.run_dir, nucleus_path(args), 3);
    let (pool, _) = boot_pool(config)?;
    let get_seed: u64 = 0x00c0_ffee_0001;
    let put = amoeba_abi::GetPort(amoeba_abi::Port::from_u64(get_seed)).put_port();
    let server = pool.exec(0, "echo-server", get_seed)?;
    println!("echo server: process {} on board 0, put-port {put}", server.pid);
    let client = pool.exec(1, "echo-client", put.to_u64())?;
    let status = pool
        .wait_process(&client, Duration::from_secs(60))
        .context("the echo client on board 1 did not finish")?;
    let client_console = pool.boards()[1].console_text();
    for line in client_console.lines().filter(|l| l.starts_with("echo-client")) {
        println!("board 1: {line}");
    }
    if status != 0 {
        bail!("the echo client on board 1 failed ({status})");
    }
    let mut host = host_station::rpc_client::RpcClient::new(pool.new_host_port()?);
    let service = amoeba_abi::Capability::for_port(put);
    for round in 0..3 {
        let text = format!("hello from the host, round {round}");
        let start = Instant::now();
        match echo::Client::new(&mut host).echo(&service, text.as_bytes()) {
            Ok((_, reply)) if reply == text.as_bytes() => {
                println!("host: echo {round} answered in {:.2} ms", start.elapsed().as_secs_f64() * 1e3)
            }
            Ok((_, reply)) => bail!("host: wrong echo: {:?}", String::from_utf8_lossy(&reply)),
            Err(status) => bail!("host: trans failed: {status}"),
        }
    }
    pool.shutdown();
    println!("rpc demo: ok");
    Ok(())
}

pub(crate) fn group_demo(args: &PoolArgs) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 4))?;
    let result = pool_demos::replicated_counter(&pool, None);
    pool.shutdown();
    result
}

pub(crate) fn chat_demo(args: &PoolArgs, lines: u64) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 4))?;
    let result = pool_demos::ordered_chat(&pool, lines);
    pool.shutdown();
    result
}

pub(crate) fn sequencer_crash_demo(args: &PoolArgs) -> Result<()> {
    let (mut pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 4))?;
    let result = pool_demos::sequencer_crash(&mut pool);
    pool.shutdown();
    result
}
