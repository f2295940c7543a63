//! The kernel side of FLIP RPC: one `flip::Endpoint` per board, driven by
//! the network thread (frames, timeouts) and by the `trans`, `get_request`
//! and `put_reply` system calls. The protocol itself (locate, fragments,
//! at-most-once, incarnations) lives in the host-tested `flip` crate; this
//! service only moves bytes between the endpoint and user memory and wakes
//! the threads that wait. Ports the nucleus serves itself (the process
//! server's) hand their requests up as [`KernelRequest`]s.

#![forbid(unsafe_code)]

use crate::process::outcome::{AfterWake, Outcome};
use crate::process::thread::{Pid, Tid, Wait};
use crate::process::user_memory::UserRange;
use crate::process::{Core, Event, Subscriber};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use amoeba_abi::syscall::error;
use amoeba_abi::{GetPort, HEADER_LEN, Header, Port, Status};
use flip::{Endpoint, ReqId, TransId};

pub use nucleus::call_types::{GetRequestArgs, PutReplyArgs, TransArgs};

/// Where a message for a blocked thread goes: a header and a buffer.
#[derive(Clone, Copy, Debug)]
struct Destination {
    tid: Tid,
    pid: Pid,
    header_out: u64,
    buffer: UserRange,
}

impl Destination {
    /// Copies `header` and as much of `buf` as fits; the length or an error.
    fn deliver(&self, core: &mut Core, header: &Header, buf: &[u8]) -> i64 {
        let len = buf.len().min(self.buffer.len as usize);
        let copied = core
            .copy_to_user(self.pid, self.header_out, &header.encode())
            .and_then(|_| core.copy_to_user(self.pid, self.buffer.va, &buf[..len]));
        match copied {
            Ok(()) => len as i64,
            Err(status) => error(status),
        }
    }
}

struct Arrived {
    req: ReqId,
    header: Header,
    buf: Vec<u8>,
}

/// Most requests waiting for one port's server threads to ask for them.
const MAX_QUEUED_PER_PORT: usize = 256;
/// Most bytes of requests waiting for server threads, over all ports; the
/// ports the nucleus serves itself (the disk and process servers) have a
/// budget of their own, so that a user server flooded with requests can still
/// reach the disk. A request beyond a bound is refused with `NoSpace` (it
/// never ran, so the client may send it again).
const MAX_QUEUED_BYTES: usize = 8 << 20;

/// A request to a port the nucleus serves itself, for the layer above to
/// answer with [`Rpc::reply_in_kernel`].
pub struct KernelRequest {
    pub req: ReqId,
    pub port: Port,
    pub header: Header,
    pub buf: Vec<u8>,
}

pub struct Rpc {
    endpoint: Endpoint,
    /// Threads blocked in `trans`, by transaction.
    clients: BTreeMap<TransId, Destination>,
    /// Threads blocked in `get_request`, by put-port.
    waiting: BTreeMap<Port, VecDeque<Destination>>,
    queued: BTreeMap<Port, VecDeque<Arrived>>,
    /// Bytes of the requests in `queued`.
    queued_bytes: usize,
    /// Bytes of the requests in `kernel_requests`.
    kernel_queued_bytes: usize,
    /// The request each server thread got last and has to answer.
    serving: BTreeMap<Tid, ReqId>,
    /// Registered put-ports: their get-port and the processes serving them.
    registered: BTreeMap<Port, (GetPort, BTreeSet<Pid>)>,
    /// Ports the nucleus serves itself, and their requests not yet answered.
    in_kernel: BTreeSet<Port>,
    kernel_requests: VecDeque<KernelRequest>,
    /// Transactions the nucleus makes itself (the process server reading a
    /// program from a file), and their outcomes not yet taken.
    kernel_clients: BTreeSet<TransId>,
    kernel_results: VecDeque<KernelResult>,
}

/// The outcome of a transaction the nucleus made itself.
pub struct KernelResult {
    pub id: TransId,
    pub result: Result<(Header, Vec<u8>), Status>,
}

impl Rpc {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            clients: BTreeMap::new(),
            waiting: BTreeMap::new(),
            queued: BTreeMap::new(),
            queued_bytes: 0,
            kernel_queued_bytes: 0,
            serving: BTreeMap::new(),
            registered: BTreeMap::new(),
            in_kernel: BTreeSet::new(),
            kernel_requests: VecDeque::new(),
            kernel_clients: BTreeSet::new(),
            kernel_results: VecDeque::new(),
        }
    }

    /// The board's MAC (the endpoint's).
    pub fn mac(&self) -> [u8; 6] {
        self.endpoint.mac().0
    }

    /// Serves `get`'s put-port in the nucleus: its requests come out of
    /// [`Rpc::take_kernel_request`].
    pub fn serve_in_kernel(&mut self, get: &GetPort) {
        self.in_kernel.insert(self.endpoint.register_server(get));
    }

    pub fn take_kernel_request(&mut self) -> Option<KernelRequest> {
        let request = self.kernel_requests.pop_front()?;
        self.kernel_queued_bytes = self.kernel_queued_bytes.saturating_sub(request.buf.len());
        Some(request)
    }

    /// Answers a [`KernelRequest`].
    pub fn reply_in_kernel(&mut self, core: &mut Core, now: u64, req: ReqId, header: &Header, buf: &[u8]) {
        let _ = self.endpoint.put_reply(now, req, header, buf);
        self.pump(core, now);
    }

    /// Starts a transaction for the nucleus itself; its outcome comes out of
    /// [`Rpc::take_kernel_result`].
    pub fn start_kernel_trans(&mut self, core: &mut Core, now: u64, header: &Header, buf: &[u8]) -> TransId {
        let id = self.endpoint.start_trans(now, header, buf);
        self.kernel_clients.insert(id);
        self.pump(core, now);
        id
    }

    pub fn take_kernel_result(&mut self) -> Option<KernelResult> {
        self.kernel_results.pop_front()
    }

    /// When the endpoint next wants [`Rpc::timeout`] (µs since boot).
    pub fn next_deadline(&self) -> Option<u64> {
        self.endpoint.next_deadline()
    }

    /// Sends what the endpoint has to send and hands its events to the
    /// threads waiting for them.
    fn pump(&mut self, core: &mut Core, now: u64) {
        while let Some(transmit) = self.endpoint.poll_transmit() {
            crate::drivers::net::send_or_count(&transmit.frame, "FLIP");
        }
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                flip::Event::TransDone { id, result } => self.finish_trans(core, id, result),
                flip::Event::RequestArrived { req, port, header, buf, .. } => {
                    self.request_arrived(core, now, port, Arrived { req, header, buf });
                }
            }
        }
    }

    /// Network thread: a FLIP frame came in.
    pub fn frame(&mut self, core: &mut Core, now: u64, frame: &[u8]) {
        self.endpoint.handle_frame(now, frame);
        self.pump(core, now);
    }

    /// Network thread: time passed.
    pub fn timeout(&mut self, core: &mut Core, now: u64) {
        self.endpoint.handle_timeout(now);
        self.pump(core, now);
    }

    fn finish_trans(&mut self, core: &mut Core, id: TransId, result: Result<(Header, Vec<u8>), Status>) {
        if self.kernel_clients.remove(&id) {
            self.kernel_results.push_back(KernelResult { id, result });
            return;
        }
        let Some(client) = self.clients.remove(&id) else {
            return; // given up (interrupted, or its process ended)
        };
        release_transaction(core, client.pid);
        let value = match result {
            Err(status) => error(status),
            Ok((header, buf)) => client.deliver(core, &header, &buf),
        };
        core.wake_waiter(client.tid, Wait::Trans(id.0), value);
    }

    fn request_arrived(&mut self, core: &mut Core, now: u64, port: Port, arrived: Arrived) {
        if self.in_kernel.contains(&port) {
            let fits = self.kernel_requests.len() < MAX_QUEUED_PER_PORT
                && self.kernel_queued_bytes.saturating_add(arrived.buf.len()) <= MAX_QUEUED_BYTES;
            if !fits {
                let _ = self.endpoint.abort_request(now, arrived.req, Status::NoSpace);
                return;
            }
            let Arrived { req, header, buf } = arrived;
            self.kernel_queued_bytes += buf.len();
            self.kernel_requests.push_back(KernelRequest { req, port, header, buf });
            return;
        }
        while let Some(waiting) = self.waiting.get_mut(&port).and_then(VecDeque::pop_front) {
            if core.is_waiting(waiting.tid, Wait::GetRequest(port)) {
                let value = self.deliver_request(core, now, &waiting, arrived);
                core.wake_waiter(waiting.tid, Wait::GetRequest(port), value);
                return;
            }
        }
        let queued = self.queued.get(&port).map_or(0, VecDeque::len);
        if !self.may_queue(queued, arrived.buf.len()) {
            // Never handed to a server: refusing it keeps at-most-once.
            let _ = self.endpoint.abort_request(now, arrived.req, Status::NoSpace);
            return;
        }
        self.queued_bytes += arrived.buf.len();
        self.queued.entry(port).or_default().push_back(arrived);
    }

    /// Whether one more request of `len` bytes may wait, behind `queued`
    /// others for the same port.
    fn may_queue(&self, queued: usize, len: usize) -> bool {
        queued < MAX_QUEUED_PER_PORT && self.queued_bytes.saturating_add(len) <= MAX_QUEUED_BYTES
    }

    /// The oldest request waiting for `port`, if any.
    fn dequeue(&mut self, port: &Port) -> Option<Arrived> {
        let arrived = self.queued.get_mut(port).and_then(VecDeque::pop_front)?;
        self.queued_bytes = self.queued_bytes.saturating_sub(arrived.buf.len());
        Some(arrived)
    }

    /// Copies a request to a server thread; returns its length or an error.
    fn deliver_request(&mut self, core: &mut Core, now: u64, to: &Destination, arrived: Arrived) -> i64 {
        let value = to.deliver(core, &arrived.header, &arrived.buf);
        if value >= 0 {
            self.serving.insert(to.tid, arrived.req);
        } else {
            let _ = self.endpoint.abort_request(now, arrived.req, Status::RpcBadAddress);
        }
        value
    }

    /// trans: blocks until the reply (or an RPC error) comes.
    pub fn trans(&mut self, core: &mut Core, now: u64, args: &TransArgs) -> Outcome {
        match self.start_trans(core, now, args) {
            Ok(outcome) => outcome,
            Err(status) => Outcome::Error(status),
        }
    }

    fn start_trans(&mut self, core: &mut Core, now: u64, args: &TransArgs) -> Result<Outcome, Status> {
        let pid = core.current_pid().ok_or(Status::SysErr)?;
        let header = read_header(core, pid, args.header)?;
        let max_buf = self.endpoint.config().max_buf as u64;
        if args.request.len > max_buf {
            return Err(Status::RpcBadAddress);
        }
        if !core.processes.get(&pid).is_some_and(|p| p.may_start_transaction()) {
            return Err(Status::NoSpace);
        }
        // The request is copied now, and the reply (up to `max_buf`) comes
        // in while the transaction lasts: both must fit beside the reserve.
        crate::heap::admit((args.request.len + args.reply.len.min(max_buf)) as usize)?;
        let buf = core.copy_from_user(pid, args.request.va, args.request.len)?;
        // The reply's destination must be valid now; it is checked again on copy.
        core.check_user(pid, args.reply_header, HEADER_LEN as u64, true)?;
        if args.reply.len > 0 {
            core.check_user(pid, args.reply.va, args.reply.len, true)?;
        }
        let id = self.endpoint.start_trans(now, &header, &buf);
        let destination =
            Destination { tid: core.current(), pid, header_out: args.reply_header, buffer: args.reply };
        self.clients.insert(id, destination);
        if let Some(process) = core.processes.get_mut(&pid) {
            process.usage.transactions += 1;
        }
        // Parked before the endpoint runs: a local reply may come at once.
        let parked = core.block_current(Wait::Trans(id.0), AfterWake::ReturnWakeResult);
        self.pump(core, now);
        Ok(Outcome::Blocked(parked))
    }

    /// get_request: the next request to F(get-port), at once or once one comes.
    pub fn get_request(&mut self, core: &mut Core, now: u64, args: &GetRequestArgs) -> Outcome {
        match self.wait_for_request(core, now, args) {
            Ok(outcome) => outcome,
            Err(status) => Outcome::Error(status),
        }
    }

    fn wait_for_request(
        &mut self,
        core: &mut Core,
        now: u64,
        args: &GetRequestArgs,
    ) -> Result<Outcome, Status> {
        let pid = core.current_pid().ok_or(Status::SysErr)?;
        let raw = core.copy_from_user(pid, args.get_port, 6)?;
        let get = GetPort(Port(raw.try_into().map_err(|_| Status::ArgBad)?));
        core.check_user(pid, args.header_out, HEADER_LEN as u64, true)?;
        if args.buffer.len > 0 {
            core.check_user(pid, args.buffer.va, args.buffer.len, true)?;
        }
        let tid = core.current();
        // A thread answers one request at a time.
        if let Some(req) = self.serving.remove(&tid) {
            let _ = self.endpoint.abort_request(now, req, Status::RpcAborted);
        }
        // The endpoint counts registrations; the nucleus registers a port
        // once, for as long as some process serves it. Deriving F(G) costs a
        // key derivation (the locate proof's key): only the first call pays.
        let known = self.registered.iter().find(|(_, (g, _))| *g == get).map(|(put, _)| *put);
        let put = match known {
            Some(put) => put,
            None => self.endpoint.register_server(&get),
        };
        self.registered.entry(put).or_insert_with(|| (get, BTreeSet::new())).1.insert(pid);
        let waiting = Destination { tid, pid, header_out: args.header_out, buffer: args.buffer };
        if let Some(arrived) = self.dequeue(&put) {
            return Ok(Outcome::from_raw(self.deliver_request(core, now, &waiting, arrived)));
        }
        self.waiting.entry(put).or_default().push_back(waiting);
        Ok(Outcome::Blocked(core.block_current(Wait::GetRequest(put), AfterWake::ReturnWakeResult)))
    }

    /// put_reply: answers the request this thread got last.
    pub fn put_reply(&mut self, core: &mut Core, now: u64, args: &PutReplyArgs) -> Outcome {
        let result = (|| {
            let pid = core.current_pid().ok_or(Status::SysErr)?;
            let header = read_header(core, pid, args.header)?;
            if args.reply.len > self.endpoint.config().max_buf as u64 {
                return Err(Status::RpcBadAddress);
            }
            let buf = core.copy_from_user(pid, args.reply.va, args.reply.len)?;
            let req = self.serving.remove(&core.current()).ok_or(Status::ArgBad)?;
            self.endpoint.put_reply(now, req, &header, &buf).map_err(|_| Status::RpcFailure)?;
            self.pump(core, now);
            Ok(0)
        })();
        Outcome::from(result)
    }

    /// A signal interrupted `tid`'s wait: a transaction is given up (its
    /// reply, if one still comes, is dropped: the buffers belonged to the
    /// call that ended; the server ran the request at most once), a
    /// get_request stops waiting.
    fn cancel_wait(&mut self, core: &mut Core, now: u64, tid: Tid, wait: Wait) {
        match wait {
            Wait::Trans(id) => {
                let id = TransId(id);
                if self.clients.get(&id).is_some_and(|client| client.tid == tid) {
                    if let Some(client) = self.clients.remove(&id) {
                        release_transaction(core, client.pid);
                    }
                    self.endpoint.abort_trans(id);
                    self.pump(core, now);
                }
            }
            Wait::GetRequest(port) => {
                if let Some(waiting) = self.waiting.get_mut(&port) {
                    waiting.retain(|w| w.tid != tid);
                }
            }
            _ => {}
        }
    }

    /// A process ended: its ports stop being served, the requests its
    /// threads held fail for their clients, its own transactions are dropped.
    fn forget_process(&mut self, core: &mut Core, now: u64, pid: Pid, threads: &[Tid]) {
        for tid in threads {
            if let Some(req) = self.serving.remove(tid) {
                let _ = self.endpoint.abort_request(now, req, Status::RpcFailure);
            }
        }
        let orphaned: Vec<Port> = self
            .registered
            .iter_mut()
            .filter_map(|(port, (_, owners))| {
                owners.remove(&pid);
                owners.is_empty().then_some(*port)
            })
            .collect();
        for port in orphaned {
            if let Some((get, _)) = self.registered.remove(&port) {
                self.endpoint.unregister_server(&get);
            }
            self.waiting.remove(&port);
            while let Some(arrived) = self.dequeue(&port) {
                let _ = self.endpoint.abort_request(now, arrived.req, Status::RpcNotFound);
            }
            self.queued.remove(&port);
        }
        let dropped: Vec<TransId> =
            self.clients.iter().filter(|(_, c)| c.pid == pid).map(|(&id, _)| id).collect();
        for id in dropped {
            self.clients.remove(&id);
            self.endpoint.abort_trans(id);
        }
        self.pump(core, now);
    }
}

impl Subscriber for Rpc {
    fn notify(&mut self, core: &mut Core, event: &Event, now: u64) {
        match event {
            Event::ProcessExited { pid, threads, .. } => self.forget_process(core, now, *pid, threads),
            Event::WaitInterrupted { tid, wait } => self.cancel_wait(core, now, *tid, *wait),
        }
    }
}

/// A transaction of `pid` ended (or was given up): it may start another.
fn release_transaction(core: &mut Core, pid: Pid) {
    if let Some(process) = core.processes.get_mut(&pid) {
        process.usage.transactions = process.usage.transactions.saturating_sub(1);
    }
}

fn read_header(core: &Core, pid: Pid, va: u64) -> Result<Header, Status> {
    Header::decode(&core.copy_from_user(pid, va, HEADER_LEN as u64)?).map_err(|_| Status::ArgBad)
}
