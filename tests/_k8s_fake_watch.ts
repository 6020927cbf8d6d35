/**
 * LIST and WATCH for the fake API server (tests/k8s_fake_server.ts), as kube-apiserver
 * serves them: every change bumps one resourceVersion counter and is kept in a history; a
 * LIST answers the objects and the current version; a WATCH from version R streams every
 * change after R (one JSON object a line), then the new ones as they happen, BOOKMARK events
 * when asked (`allowWatchBookmarks`), until `timeoutSeconds`. A version older than the
 * history (after {@linkcode WatchHub.compact}) is answered 410: in the stream as an ERROR
 * event, as the API server does, or (option) as the HTTP status.
 *
 * @module
 */

/** A collection the hub serves (pods, NADs, or any kept by the fake server's `put`). */
export type Kind = string;

interface Change {
  rv: number;
  kind: Kind;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Record<string, unknown>;
}

interface Watcher {
  kind: Kind;
  keep: (obj: Record<string, unknown>) => boolean;
  send: (ev: unknown) => void;
  bookmarks: boolean;
  end: () => void;
}

const enc = new TextEncoder();

function status(code: number, reason: string, message: string): Response {
  const body = { kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code };
  return Response.json(body, { status: code });
}

/** The history and the open watches of the fake API server. */
export class WatchHub {
  /** The current resourceVersion (the last change's). */
  rv = 1;
  #history: Change[] = [];
  #oldest = 0;
  #watchers = new Set<Watcher>();
  /** Answer a too-old version with HTTP 410 instead of an ERROR event. */
  goneAsStatus = false;

  /** Open watches now. */
  get watching(): number {
    return this.#watchers.size;
  }

  /** Records a change of `object` (its resourceVersion set) and streams it to watchers. */
  change(kind: Kind, type: Change["type"], object: Record<string, unknown>): void {
    const rv = ++this.rv;
    (object.metadata as Record<string, unknown>).resourceVersion = String(rv);
    const c = { rv, kind, type, object: structuredClone(object) };
    this.#history.push(c);
    for (const w of this.#watchers) {
      if (w.kind === kind && w.keep(c.object)) w.send({ type, object: c.object });
    }
  }

  /** Drops the history (etcd compaction): watches from an older version get 410. */
  compact(): void {
    this.#history = [];
    this.#oldest = this.rv;
  }

  /** Sends a BOOKMARK of the current version to every watch that allows them. */
  bookmark(): void {
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const obj = { kind: w.kind === "pods" ? "Pod" : "NetworkAttachmentDefinition" };
      w.send({
        type: "BOOKMARK",
        object: { ...obj, metadata: { resourceVersion: String(this.rv) } },
      });
    }
  }

  /** Tells every open watch 410 Gone (as after a compaction) and ends it. */
  expireWatches(): void {
    this.compact();
    for (const w of [...this.#watchers]) {
      w.send(gone());
      w.end();
    }
  }

  /** Ends every open watch (a timeout, a load balancer dropping them). */
  endWatches(): void {
    for (const w of [...this.#watchers]) w.end();
  }

  /** LIST or WATCH of `kind` (the query says which), over `objects`, filtered by `keep`. */
  serve(
    url: URL,
    kind: Kind,
    objects: Record<string, unknown>[],
    keep: (obj: Record<string, unknown>) => boolean,
  ): Response {
    const q = url.searchParams;
    if (q.get("watch") !== "1" && q.get("watch") !== "true") {
      const items = objects.filter(keep);
      const limit = Number(q.get("limit") ?? 0);
      if (!(limit > 0)) {
        return Response.json({
          kind: "List",
          metadata: { resourceVersion: String(this.rv) },
          items,
        });
      }
      // Pages (limit/continue): the token is the offset of the next page.
      const from = Number(q.get("continue") ?? 0);
      const page = items.slice(from, from + limit);
      const more = from + limit < items.length;
      const metadata = {
        resourceVersion: String(this.rv),
        ...(more ? { continue: String(from + limit) } : {}),
      };
      return Response.json({ kind: "List", metadata, items: page });
    }
    const from = Number(q.get("resourceVersion") ?? this.rv);
    const tooOld = from < this.#oldest;
    if (tooOld && this.goneAsStatus) return status(410, "Expired", "too old resource version");
    const timeout = Number(q.get("timeoutSeconds") ?? 1800) * 1000;
    let watcher: Watcher | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        const send = (ev: unknown) => {
          try {
            ctl.enqueue(enc.encode(JSON.stringify(ev) + "\n"));
          } catch { /* closed */ }
        };
        const end = () => {
          clearTimeout(timer);
          if (watcher) this.#watchers.delete(watcher);
          try {
            ctl.close();
          } catch { /* closed */ }
        };
        if (tooOld) {
          send(gone());
          return end();
        }
        for (const c of this.#history) {
          if (c.rv > from && c.kind === kind && keep(c.object)) {
            send({ type: c.type, object: c.object });
          }
        }
        watcher = { kind, keep, send, bookmarks: q.get("allowWatchBookmarks") === "true", end };
        this.#watchers.add(watcher);
        timer = setTimeout(end, timeout);
      },
      cancel: () => {
        clearTimeout(timer);
        if (watcher) this.#watchers.delete(watcher);
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }
}

function gone() {
  const object = {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message: "too old resource version",
    reason: "Expired",
    code: 410,
  };
  return { type: "ERROR", object };
}
