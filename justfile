# Recipes for the Amoeba-style processor pool. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

nucleus_target := "aarch64-unknown-none"
boot := "target/release/boot"

# Show the recipes.
default:
    @just --list

# Build the nucleus and the user programs (aarch64), and the host program.
build:
    cargo build --release -p nucleus -p user-programs --target {{nucleus_target}}
    cargo build --release -p boot

# Boot a pool of N boards and keep it running until Ctrl-C or `just down`.
up n="4" *args: build
    {{boot}} up {{n}} {{args}}

# Stop the running pool.
down:
    {{boot}} down

# Show the running pool's boards, faults and switch counters.
status:
    {{boot}} status

# Change the running pool's faults, e.g. `just fault loss=20 dup=5`, `just fault partition=b0,h0/b1`, `just fault heal`.
fault +spec:
    {{boot}} fault {{spec}}

# Run a program where the run server puts it, output here: `just ax hello world` (`--on 2`, `--detach`).
ax +args:
    {{boot}} ax {{args}}

# The rows of a directory with their column masks, e.g. `just ls /bin`.
ls path="/":
    {{boot}} ls {{path}}

# Make a directory, e.g. `just mkdir /home`.
mkdir path:
    {{boot}} mkdir {{path}}

# Remove an entry (a file goes from the file server too; a directory must be empty).
rm path:
    {{boot}} rm {{path}}

# Set an entry's column masks (hex per column), e.g. `just chmod /home/notes ff:02:00`.
chmod path masks:
    {{boot}} chmod {{path}} {{masks}}

# Store a local file at a path, e.g. `just put README.md /home/readme`.
put local path:
    {{boot}} put {{local}} {{path}}

# Fetch a file to LOCAL, or to standard output without it.
get path *local:
    {{boot}} get {{path}} {{local}}

# What the object at a path says of itself.
info path:
    {{boot}} info {{path}}

# Every process on every board of the running pool (`--all`: also those that ended).
ps *args:
    {{boot}} ps {{args}}

# Each processor's load, free memory, largest free run, and whether the run server counts it alive.
hosts:
    {{boot}} hosts

# The services the boot service keeps up: board, state (up / suspect / restarting / dead), restarts, last answer.
services:
    {{boot}} services

# Kill board N of the running pool (SIGKILL) and boot it again; the boot service restarts what ran there.
restart-board n:
    {{boot}} restart-board {{n}}

# Freeze a process (capability, BOARD/PID, or a program name `ps` shows).
stun process:
    {{boot}} stun {{process}}

# Let a stunned process run again.
resume process:
    {{boot}} resume {{process}}

# End a process.
kill process:
    {{boot}} kill {{process}}

# Run a program of the bundle on board N of the running pool, e.g. `just run 1 hello`.
run n program *args:
    {{boot}} run {{n}} {{program}} {{args}}

# Boot 4 boards, echo each from the host, print round-trip times, shut down.
ping: build
    {{boot}} ping 4 --run-dir run/ping

# Boot 3 boards: an echo server on board 0 answers a client on board 1 and the host.
rpc-demo: build
    {{boot}} rpc-demo --run-dir run/rpc-demo

# Replicated counter on 4 boards and the host: same value and order everywhere.
group-demo: build
    {{boot}} group-demo --run-dir run/group-demo

# Ordered chat on 4 boards: all send at once, every board's log is the same.
chat-demo: build
    {{boot}} chat-demo --run-dir run/chat-demo

# Kill the sequencer's board mid-stream: the group resets, goes on, loses nothing delivered.
sequencer-crash-demo: build
    {{boot}} sequencer-crash-demo --run-dir run/crash-demo

# Attach GDB to board N of the running pool.
gdb n: build
    {{boot}} gdb {{n}}

# Run every test: formatting and lints, host unit and simulation tests, and pool tests on real boards.
test: lint build
    cargo test

# Soak the nucleus: 70,000 process create/exit cycles on one board (about 2.5 minutes).
soak-nucleus: build
    cargo test -p pool-tests --test processes -- --ignored

# Soak the simulations (release, niced): `seeds` per sequencer scenario and for the FLIP simulation; prints each scenario's counts and every failing seed with how to replay it.
soak seeds="1000000" threads="1":
    #!/usr/bin/env bash
    set -uo pipefail
    status=0
    SEQ_SEEDS={{seeds}} nice cargo test --release -p sequencer --test sim -- --nocapture --test-threads {{threads}} || status=1
    FLIP_SEEDS={{seeds}} nice cargo test --release -p flip --test sim simulation_seeds -- --nocapture || status=1
    exit $status

# Benchmarks (not tests): frame echo, RPC, nucleus, pool boot time, group broadcast, process creation, Bullet, directory, whole system (`just bench --only group`: that alone).
bench *args: build
    {{boot}} bench --run-dir run/bench {{args}}

# Formatting and lints for host crates and the aarch64 nucleus.
lint:
    cargo fmt --all --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy -p nucleus -p user-programs --target {{nucleus_target}} -- -D warnings
    cargo clippy -p amoeba-rt --target {{nucleus_target}} -- -D warnings
