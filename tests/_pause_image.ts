/**
 * The pod sandbox image of the containerd tests, built offline at test time: tests/cri/pause.c
 * compiled with `gcc -static`, packed as a one-layer `FROM scratch` OCI image layout
 * (oci-layout, index.json, blobs/sha256/: the layer tar, the config JSON, the manifest) and
 * tarred for `ctr images import`. Written here rather than `podman build` + `podman save`
 * so nothing touches podman's shared store (other tests use it at the same time) and the
 * image is a few files whose every byte the test made.
 *
 * @module
 */
import { run } from "./testutils.ts";

const PAUSE_C = new URL("./cri/pause.c", import.meta.url).pathname;

/** The name the image is imported under (the private containerd's `sandbox_image`). */
export const PAUSE_IMAGE = "localhost/ppc-pause:1";

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes a blob under `layout/blobs/sha256/` and returns its descriptor. */
async function blob(layout: string, mediaType: string, bytes: Uint8Array) {
  const digest = await sha256(bytes);
  await Deno.writeFile(`${layout}/blobs/sha256/${digest}`, bytes);
  return { mediaType, digest: `sha256:${digest}`, size: bytes.length };
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/**
 * Builds the pause image under `dir` and returns the path of its OCI archive (a tar of the
 * image layout, as `ctr images import` reads it; the name is in the index's
 * `io.containerd.image.name` annotation).
 */
export async function buildPauseImage(dir: string): Promise<string> {
  const rootfs = `${dir}/rootfs`;
  const layout = `${dir}/layout`;
  await Deno.mkdir(rootfs, { recursive: true });
  await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true });
  await run("gcc", "-static", "-Os", "-o", `${rootfs}/pause`, PAUSE_C);
  // Owner root and a fixed mtime: the same sources give the same layer digest.
  await run(
    "tar",
    ...["-C", rootfs, "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0"],
    ...["-cf", `${dir}/layer.tar`, "pause"],
  );
  const layerBytes = await Deno.readFile(`${dir}/layer.tar`);
  const layer = await blob(layout, "application/vnd.oci.image.layer.v1.tar", layerBytes);
  const config = await blob(
    layout,
    "application/vnd.oci.image.config.v1+json",
    json({
      architecture: "amd64",
      os: "linux",
      config: { Entrypoint: ["/pause"] },
      rootfs: { type: "layers", diff_ids: [layer.digest] }, // an uncompressed layer: same digest
    }),
  );
  const manifest = await blob(
    layout,
    "application/vnd.oci.image.manifest.v1+json",
    json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: [layer],
    }),
  );
  await Deno.writeTextFile(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        ...manifest,
        platform: { architecture: "amd64", os: "linux" },
        annotations: {
          "io.containerd.image.name": PAUSE_IMAGE,
          "org.opencontainers.image.ref.name": "1",
        },
      }],
    }),
  );
  const archive = `${dir}/pause-oci.tar`;
  await run("tar", "-C", layout, "-cf", archive, "oci-layout", "index.json", "blobs");
  return archive;
}
