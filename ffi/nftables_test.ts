import assert from "node:assert/strict";
import { NetNs } from "./netns.ts";
import { runNftIn } from "./nftables.ts";

const NS = "ppe-nft";
const TABLE =
  "table inet ppe\ndelete table inet ppe\ntable inet ppe { chain c { type filter hook input priority 0; policy accept; tcp dport 80 drop; }\n}\n";

Deno.test("runNftIn() applies a script inside the netns only, and a bad one changes nothing", () => {
  using ns = NetNs.create(NS);
  try {
    runNftIn(ns, TABLE);
    assert.match(runNftIn(ns, "list table inet ppe"), /tcp dport 80 drop/);
    assert.throws(
      () =>
        runNftIn(
          ns,
          "delete table inet ppe\ntable inet ppe { chain c { tcp dport nope drop; }\n}\n",
        ),
      /Cannot apply the nftables script: .*Could not resolve service/s,
    );
    // The failed transaction left the table as it was.
    assert.match(runNftIn(ns, "list table inet ppe"), /tcp dport 80 drop/);
  } finally {
    NetNs.remove(NS);
  }
});
