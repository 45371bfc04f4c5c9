/** The legend of `htab conntrack`'s table, in its own module so that --help does not load the run. */

/** What each column of the table (and the progress line) means: printed by --help, and in docs/cli.md. */
export const CONNTRACK_LEGEND = `Columns of the table:
  GC mode                  how the GC worker deletes an expired flow: "delete by key" (read a batch,
                           then delete each old key, as Cilium does) or "compareAndDelete" (delete
                           only if the flow's last-seen time is still the one the GC read)
  pkts/s                   packets the datapath workers processed per second (each one run of the
                           datapath BPF program: compiled on htab's map, through BPF_PROG_TEST_RUN
                           on a kernel map)
  new flows                flows the datapath inserted (first packet, or again after a deletion)
  GC sweeps                full passes of the GC over the map
  expired deleted          flows the GC deleted
  LIVE flows deleted (GC)  of those, flows that had been refreshed after the GC read them: live
                           connections the GC broke (the race; compareAndDelete makes it 0)
  broken (datapath)        packets that found their flow gone although the flow's previous packet
                           was less than the timeout ago: the same race seen by the datapath (with
                           --lru it also counts flows the full map evicted)
  races caught             compareAndDelete calls refused (EBUSY) because the flow was refreshed
                           after the GC read it: each is a live-flow deletion avoided
  map MiB                  the map's memory (memoryUsage())
The progress line (stderr) is titled <backend>/<GC mode>: sab/ is htab's SharedArrayBuffer map,
kernel/ a real kernel map (--kernel).`;
