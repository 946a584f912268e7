-- bench_writer.lua: the fixed-rate writer of scripts/bench.sh, run by sysbench.
--
--   sysbench scripts/bench_writer.lua --threads=4 --time=0 --mysql-socket=... \
--     --mysql-user=root --mysql-db=bench --mysql-ignore-errors=all \
--     --writer_rate=200 --table_size=1000000 --stop_file=F --out=PREFIX run
--
-- Each transaction is the one of sysbench's oltp_write_only on sbtest1 (an
-- indexed-column UPDATE, a non-indexed UPDATE, a DELETE and an INSERT of the
-- same id; ids from sysbench's default "special" distribution), with two
-- changes, both for the data check of bench.sh:
--
--  * Values are chosen here, never computed by the server (`k = <n>` rather
--    than `k = k + 1`), and the same transaction records them in
--    bench_journal (id -> the latest k, c, pad the writer gave that id; NULL
--    = not written). The table's expected content is then sbtest1_pristine
--    overlaid with bench_journal, whatever the migration did to sbtest1.
--    Both writes commit or roll back together, and a transaction holds its
--    sbtest1 row locks while it writes the journal, so the journal sees
--    the writes to one id in the order sbtest1 does.
--
--  * Pacing is done here, not with sysbench's --rate: every thread runs its
--    share of the rate on a fixed schedule (thread i's n-th transaction is due
--    at start + (n + i / threads) * threads / rate) and a transaction's
--    latency is measured from when it was due, not from when it started.
--    sysbench's --rate latency leaves out the time an event waits in its
--    queue, so a 10 s stall behind a table lock would show in only the few
--    transactions that were running when it began (coordinated omission).
--
-- Every thread writes one line per transaction to <out>.<thread>:
--   <due_us> <start_us> <end_us> <status>
-- (microseconds since the epoch, CLOCK_REALTIME; status "ok" or the SQL
-- error number), when the stop file appears or after --max_seconds.
-- A failed transaction is rolled back and counted, not retried.

local ffi = require("ffi")

pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
int usleep(unsigned int usec);
]])

sysbench.cmdline.options = {
   writer_rate = {"Transactions per second, all threads together", 200},
   table_size = {"Rows in sbtest1 (ids 1..table_size)", 1000000},
   stop_file = {"Stop once this file exists", ""},
   out = {"Prefix of the per-thread transaction logs", "bench-writer"},
   max_seconds = {"Stop after this many seconds at the latest", 3600},
}

local ts = ffi.new("bench_timespec_t")

local function now_us()
   ffi.C.clock_gettime(0, ts)   -- CLOCK_REALTIME, comparable with bash's EPOCHREALTIME
   return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local function file_exists(path)
   local f = io.open(path, "r")
   if f then f:close() return true end
   return false
end

-- The same templates as oltp_common.lua: 119 and 59 characters.
local C_TEMPLATE = "###########-###########-###########-###########-###########-" ..
   "###########-###########-###########-###########-###########"
local PAD_TEMPLATE = "###########-###########-###########-###########-###########"

function thread_init()
   drv = sysbench.sql.driver()
   con = drv:connect()
end

function thread_done()
   con:disconnect()
end

-- Required by sysbench, unused: thread_run below replaces its event loop.
function event()
end

local function transaction()
   local n = sysbench.opt.table_size
   local a, b, d = sysbench.rand.default(1, n), sysbench.rand.default(1, n), sysbench.rand.default(1, n)
   local ka, kd = sysbench.rand.default(1, n), sysbench.rand.default(1, n)
   local cb = sysbench.rand.string(C_TEMPLATE)
   local cd = sysbench.rand.string(C_TEMPLATE)
   local pd = sysbench.rand.string(PAD_TEMPLATE)
   con:query("BEGIN")
   con:query(string.format("UPDATE sbtest1 SET k = %d WHERE id = %d", ka, a))
   con:query(string.format("UPDATE sbtest1 SET c = '%s' WHERE id = %d", cb, b))
   con:query(string.format("DELETE FROM sbtest1 WHERE id = %d", d))
   con:query(string.format("INSERT INTO sbtest1 (id, k, c, pad) VALUES (%d, %d, '%s', '%s')",
                           d, kd, cd, pd))
   -- Rows in statement order, so a later write to the same id wins, as in sbtest1.
   con:query(string.format(
      "INSERT INTO bench_journal (id, k, c, pad) VALUES (%d, %d, NULL, NULL), " ..
      "(%d, NULL, '%s', NULL), (%d, %d, '%s', '%s') ON DUPLICATE KEY UPDATE " ..
      "k = COALESCE(VALUES(k), k), c = COALESCE(VALUES(c), c), pad = COALESCE(VALUES(pad), pad)",
      a, ka, b, cb, d, kd, cd, pd))
   con:query("COMMIT")
end

function thread_run(thread_id)
   local threads = sysbench.opt.threads
   local interval = 1000000 * threads / sysbench.opt.writer_rate
   local first = now_us() + interval * thread_id / threads
   local deadline = now_us() + sysbench.opt.max_seconds * 1000000
   local stop_file = sysbench.opt.stop_file
   local lines = {}
   local n = 0
   while true do
      if n % 5 == 0 and ((stop_file ~= "" and file_exists(stop_file)) or now_us() > deadline) then
         break
      end
      local due = math.floor(first + n * interval)
      local wait = due - now_us()
      if wait > 0 then
         ffi.C.usleep(wait)
      end
      local start = now_us()
      ffi.C.sb_event_start(thread_id)
      local ok, err = pcall(transaction)
      local status = "ok"
      if not ok then
         if type(err) == "table" and err.errcode == sysbench.error.RESTART_EVENT then
            status = tostring(err.sql_errno)
         else
            status = "lua"
            io.stderr:write(string.format("bench_writer: thread %d: %s\n", thread_id, tostring(err)))
         end
         pcall(con.query, con, "ROLLBACK")
      end
      ffi.C.sb_event_stop(thread_id)
      lines[#lines + 1] = string.format("%d %d %d %s", due, start, now_us(), status)
      n = n + 1
   end
   local f = assert(io.open(string.format("%s.%d", sysbench.opt.out, thread_id), "w"))
   f:write(table.concat(lines, "\n"), "\n")
   f:close()
end
