//! The kernel side of FLIP RPC: one `flip::Endpoint` per board, driven by
//! the network thread (frames, timeouts) and by the `trans`, `get_request`
//! and `put_reply` system calls. The protocol itself (locate, fragments,
//! at-most-once, incarnations) lives in the host-tested `flip` crate; this
//! module only moves bytes between the endpoint and user memory and wakes
//! the threads that wait.

use crate::process::{Kernel, Pid, Tid, Wait};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use amoeba::syscall::error;
use amoeba::{GetPort, HEADER_LEN, Header, Port, Status};
use flip::{Endpoint, Event, ReqId, TransId};

/// A thread blocked in `trans`, and where its reply goes.
struct Client {
    tid: Tid,
    pid: Pid,
    header_out: u64,
    buf: u64,
    capacity: u64,
}

/// A thread blocked in `get_request`, and where the request goes.
struct Waiting {
    tid: Tid,
    pid: Pid,
    header_out: u64,
    buf: u64,
    capacity: u64,
}

struct Arrived {
    req: ReqId,
    header: Header,
    buf: Vec<u8>,
}

pub struct Rpc {
    pub endpoint: Endpoint,
    clients: BTreeMap<TransId, Client>,
    waiting: BTreeMap<Port, VecDeque<Waiting>>,
    queued: BTreeMap<Port, VecDeque<Arrived>>,
    /// The request each server thread got last and has to answer.
    serving: BTreeMap<Tid, ReqId>,
    /// Registered put-ports: their get-port and the processes serving them.
    registered: BTreeMap<Port, (GetPort, BTreeSet<Pid>)>,
}

impl Rpc {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            clients: BTreeMap::new(),
            waiting: BTreeMap::new(),
            queued: BTreeMap::new(),
            serving: BTreeMap::new(),
            registered: BTreeMap::new(),
        }
    }
}

fn now() -> u64 {
    crate::drivers::timer::uptime_micros()
}

/// What an RPC system call asks the dispatcher to do.
pub enum RpcOutcome {
    Return(i64),
    /// The thread is blocked already (and may even be woken already).
    Blocked,
}

impl Kernel {
    /// Sends what the endpoint has to send and hands its events to the
    /// threads waiting for them.
    pub fn rpc_pump(&mut self) {
        while let Some(transmit) = self.rpc.endpoint.poll_transmit() {
            if let Err(error) = crate::net::send(&transmit.frame) {
                crate::println!("nucleus: FLIP send failed: {error}");
            }
        }
        while let Some(event) = self.rpc.endpoint.poll_event() {
            match event {
                Event::TransDone { id, result } => self.finish_trans(id, result),
                Event::RequestArrived { req, port, header, buf, .. } => {
                    self.request_arrived(port, Arrived { req, header, buf });
                }
            }
        }
        self.update_net_deadline();
    }

    /// Network thread: a FLIP frame came in.
    pub fn rpc_frame(&mut self, frame: &[u8]) {
        self.rpc.endpoint.handle_frame(now(), frame);
        self.rpc_pump();
    }

    /// Network thread: time passed.
    pub fn rpc_timeout(&mut self) {
        self.rpc.endpoint.handle_timeout(now());
        self.rpc_pump();
    }

    fn finish_trans(&mut self, id: TransId, result: Result<(Header, Vec<u8>), Status>) {
        let Some(client) = self.rpc.clients.remove(&id) else {
            return;
        };
        let value = match result {
            Err(status) => error(status),
            Ok((header, buf)) => {
                let len = buf.len().min(client.capacity as usize);
                let copied = self
                    .copy_to_user(client.pid, client.header_out, &header.encode())
                    .and_then(|_| self.copy_to_user(client.pid, client.buf, &buf[..len]));
                match copied {
                    Ok(()) => len as i64,
                    Err(status) => error(status),
                }
            }
        };
        self.wake_waiter(client.tid, Wait::Trans(id.0), value);
    }

    fn request_arrived(&mut self, port: Port, arrived: Arrived) {
        if port == self.process_port {
            let (header, buf) = self.process_server(&arrived.header);
            let _ = self.rpc.endpoint.put_reply(now(), arrived.req, &header, &buf);
            return;
        }
        while let Some(waiting) = self.rpc.waiting.get_mut(&port).and_then(VecDeque::pop_front) {
            let still_waiting = self
                .threads
                .get(&waiting.tid)
                .is_some_and(|t| t.state == crate::process::ThreadState::Blocked(Wait::GetRequest(port)));
            if still_waiting {
                let value = self.deliver(&waiting, arrived);
                self.wake_waiter(waiting.tid, Wait::GetRequest(port), value);
                return;
            }
        }
        self.rpc.queued.entry(port).or_default().push_back(arrived);
    }

    /// The board's process server, answered by the nucleus itself: standard
    /// info and destroy, and stun, resume, signal.
    fn process_server(&mut self, request: &Header) -> (Header, Vec<u8>) {
        use amoeba::cmd::{PS_RESUME, PS_SIGNAL, PS_STUN, STD_DESTROY, STD_INFO};
        use amoeba::syscall::{PROCESS_DESTROY, PROCESS_RESUME, PROCESS_SIGNAL_BASE, PROCESS_STUN};
        let capability = request.capability();
        let result = match request.command {
            STD_INFO => self.process_for(&capability, amoeba::Rights::NONE).map(|pid| {
                let process = &self.processes[&pid];
                let state = match process.state {
                    crate::process::ProcessState::Running => alloc::string::String::from("running"),
                    crate::process::ProcessState::Stunned => alloc::string::String::from("stunned"),
                    crate::process::ProcessState::Exited(status) => {
                        alloc::format!("exited with status {status}")
                    }
                };
                alloc::format!("process {pid} ({}): {state}, {} threads", process.name, process.threads.len())
                    .into_bytes()
            }),
            command => {
                let op = match command {
                    STD_DESTROY => Some(PROCESS_DESTROY),
                    PS_STUN => Some(PROCESS_STUN),
                    PS_RESUME => Some(PROCESS_RESUME),
                    PS_SIGNAL => Some(PROCESS_SIGNAL_BASE + request.extra as u64),
                    _ => None,
                };
                match op {
                    Some(op) => {
                        crate::process::syscall::process_control(self, &capability, op).map(|_| Vec::new())
                    }
                    None => Err(Status::ComBad),
                }
            }
        };
        match result {
            Ok(buf) => (Header::reply(Status::Ok), buf),
            Err(status) => (Header::reply(status), Vec::new()),
        }
    }

    /// Copies a request to a server thread; returns its length or an error.
    fn deliver(&mut self, waiting: &Waiting, arrived: Arrived) -> i64 {
        let len = arrived.buf.len().min(waiting.capacity as usize);
        let copied = self
            .copy_to_user(waiting.pid, waiting.header_out, &arrived.header.encode())
            .and_then(|_| self.copy_to_user(waiting.pid, waiting.buf, &arrived.buf[..len]));
        match copied {
            Ok(()) => {
                self.rpc.serving.insert(waiting.tid, arrived.req);
                len as i64
            }
            Err(status) => {
                let _ = self.rpc.endpoint.abort_request(now(), arrived.req, Status::RpcBadAddress);
                error(status)
            }
        }
    }

    /// trans: a[0] request header, a[1] buffer, a[2] length, a[3] reply
    /// header out, a[4] reply buffer, a[5] its capacity.
    pub fn rpc_trans(&mut self, pid: Pid, a: [u64; 6]) -> RpcOutcome {
        match self.start_trans(pid, a) {
            Err(status) => RpcOutcome::Return(error(status)),
            Ok(()) => RpcOutcome::Blocked,
        }
    }

    fn start_trans(&mut self, pid: Pid, a: [u64; 6]) -> Result<(), Status> {
        let header = Header::decode(&self.copy_from_user(pid, a[0], HEADER_LEN as u64)?)
            .map_err(|_| Status::ArgBad)?;
        if a[2] > self.rpc.endpoint.config().max_buf as u64 {
            return Err(Status::RpcBadAddress);
        }
        let buf = self.copy_from_user(pid, a[1], a[2])?;
        // The reply's destination must be valid now; it is checked again on copy.
        self.check_user(pid, a[3], HEADER_LEN as u64, true)?;
        if a[5] > 0 {
            self.check_user(pid, a[4], a[5], true)?;
        }
        let id = self.rpc.endpoint.start_trans(now(), &header, &buf);
        let tid = self.current;
        self.rpc.clients.insert(id, Client { tid, pid, header_out: a[3], buf: a[4], capacity: a[5] });
        self.block_current(Wait::Trans(id.0));
        self.rpc_pump();
        Ok(())
    }

    /// get_request: a[0] get-port (6 bytes), a[1] header out, a[2] buffer, a[3] capacity.
    pub fn rpc_get_request(&mut self, pid: Pid, a: [u64; 6]) -> RpcOutcome {
        let result = (|| {
            let raw = self.copy_from_user(pid, a[0], 6)?;
            let get = GetPort(Port(raw.try_into().map_err(|_| Status::ArgBad)?));
            self.check_user(pid, a[1], HEADER_LEN as u64, true)?;
            if a[3] > 0 {
                self.check_user(pid, a[2], a[3], true)?;
            }
            let tid = self.current;
            // A thread answers one request at a time.
            if let Some(req) = self.rpc.serving.remove(&tid) {
                let _ = self.rpc.endpoint.abort_request(now(), req, Status::RpcAborted);
            }
            // The endpoint counts registrations; the kernel registers a port
            // once, for as long as some process serves it.
            let put = get.put_port();
            if !self.rpc.registered.contains_key(&put) {
                self.rpc.endpoint.register_server(&get);
            }
            self.rpc.registered.entry(put).or_insert_with(|| (get, BTreeSet::new())).1.insert(pid);
            let waiting = Waiting { tid, pid, header_out: a[1], buf: a[2], capacity: a[3] };
            if let Some(arrived) = self.rpc.queued.get_mut(&put).and_then(VecDeque::pop_front) {
                return Ok(Some(self.deliver(&waiting, arrived)));
            }
            self.rpc.waiting.entry(put).or_default().push_back(waiting);
            self.block_current(Wait::GetRequest(put));
            Ok(None)
        })();
        match result {
            Err(status) => RpcOutcome::Return(error(status)),
            Ok(Some(value)) => RpcOutcome::Return(value),
            Ok(None) => RpcOutcome::Blocked,
        }
    }

    /// put_reply: a[0] header, a[1] buffer, a[2] length.
    pub fn rpc_put_reply(&mut self, pid: Pid, a: [u64; 6]) -> i64 {
        let result = (|| {
            let header = Header::decode(&self.copy_from_user(pid, a[0], HEADER_LEN as u64)?)
                .map_err(|_| Status::ArgBad)?;
            if a[2] > self.rpc.endpoint.config().max_buf as u64 {
                return Err(Status::RpcBadAddress);
            }
            let buf = self.copy_from_user(pid, a[1], a[2])?;
            let tid = self.current;
            let req = self.rpc.serving.remove(&tid).ok_or(Status::ArgBad)?;
            self.rpc.endpoint.put_reply(now(), req, &header, &buf).map_err(|_| Status::RpcFailure)?;
            self.rpc_pump();
            Ok(0)
        })();
        result.unwrap_or_else(error)
    }

    /// A signal interrupted `tid`'s wait: a transaction is given up (its
    /// reply, if one still comes, is dropped: the buffers belonged to the
    /// call that ended; the server ran the request at most once), a
    /// get_request stops waiting.
    pub fn rpc_cancel_wait(&mut self, tid: Tid, wait: Wait) {
        match wait {
            Wait::Trans(id) => {
                let id = TransId(id);
                if self.rpc.clients.get(&id).is_some_and(|client| client.tid == tid) {
                    self.rpc.clients.remove(&id);
                    self.rpc.endpoint.abort_trans(id);
                    self.rpc_pump();
                }
            }
            Wait::GetRequest(port) => {
                if let Some(waiting) = self.rpc.waiting.get_mut(&port) {
                    waiting.retain(|w| w.tid != tid);
                }
            }
            _ => {}
        }
    }

    /// A process ended: its ports stop being served, the requests its
    /// threads held fail for their clients, its own transactions are dropped.
    pub fn rpc_forget_process(&mut self, pid: Pid, threads: &[Tid]) {
        for tid in threads {
            if let Some(req) = self.rpc.serving.remove(tid) {
                let _ = self.rpc.endpoint.abort_request(now(), req, Status::RpcFailure);
            }
        }
        let orphaned: Vec<Port> = self
            .rpc
            .registered
            .iter_mut()
            .filter_map(|(port, (_, owners))| {
                owners.remove(&pid);
                owners.is_empty().then_some(*port)
            })
            .collect();
        for port in orphaned {
            if let Some((get, _)) = self.rpc.registered.remove(&port) {
                self.rpc.endpoint.unregister_server(&get);
            }
            self.rpc.waiting.remove(&port);
            for arrived in self.rpc.queued.remove(&port).unwrap_or_default() {
                let _ = self.rpc.endpoint.abort_request(now(), arrived.req, Status::RpcNotFound);
            }
        }
        let dropped: Vec<TransId> =
            self.rpc.clients.iter().filter(|(_, c)| c.pid == pid).map(|(&id, _)| id).collect();
        for id in dropped {
            self.rpc.clients.remove(&id);
            self.rpc.endpoint.abort_trans(id);
        }
        self.rpc_pump();
    }
}
