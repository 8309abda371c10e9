//! Images no other pod on the node shares: the lab's `podstart-lab/big-N:1`
//! with every layer after the first (busybox) replaced by one of the same
//! size holding new random bytes, pushed to the lab registry (plain HTTP)
//! as `podstart-lab/big-N:bench-<run id>`. Another pod running `big-N:1`
//! keeps those layers unpacked and in the content store, so a pull of the
//! shared image would fetch less; a fresh one fetches every layer but the
//! busybox base. The layers are uncompressed tars (random bytes do not
//! compress).
use std::time::Duration;

use ring::digest::{SHA256, digest};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

struct Reply {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

/// One HTTP/1.1 request on its own connection.
async fn http(
    registry: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut conn = TcpStream::connect(registry).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {registry}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("registry timed out"))??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let header = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = header.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let location = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    let mut body = raw[split + 4..].to_vec();
    if header
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Ok(Reply {
        status,
        location,
        body,
    })
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

fn sha256(b: &[u8]) -> String {
    let d = digest(&SHA256, b);
    let hex: String = d.as_ref().iter().map(|x| format!("{x:02x}")).collect();
    format!("sha256:{hex}")
}

/// A tar holding one file of `size` random bytes.
fn random_tar(name: &str, size: usize) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut tar = h.to_vec();
    let mut data = vec![0u8; size];
    fastrand::fill(&mut data);
    tar.extend_from_slice(&data);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

async fn push_blob(registry: &str, repo: &str, blob: &[u8]) -> Result<String, String> {
    let d = sha256(blob);
    let start = http(
        registry,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &[],
    )
    .await
    .map_err(|e| e.to_string())?;
    let location = start
        .location
        .filter(|_| start.status == 202)
        .ok_or_else(|| format!("blob upload refused: HTTP {}", start.status))?;
    let path = location
        .strip_prefix(&format!("http://{registry}"))
        .unwrap_or(&location)
        .to_string();
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = http(
        registry,
        "PUT",
        &format!("{path}{sep}digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        blob,
    )
    .await
    .map_err(|e| e.to_string())?;
    if put.status != 201 {
        return Err(format!("blob upload failed: HTTP {}", put.status));
    }
    Ok(d)
}

/// Pushes `podstart-lab/<name>:<tag>`: `<name>:1` with fresh layers.
pub(crate) async fn push_fresh(registry: &str, name: &str, tag: &str) -> Result<(), String> {
    let repo = format!("podstart-lab/{name}");
    let get = |path: String, accept: &'static str| async move {
        http(registry, "GET", &path, &[("Accept", accept)], &[])
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status == 200 {
                    Ok(r.body)
                } else {
                    Err(format!("GET {path}: HTTP {}", r.status))
                }
            })
    };
    let manifest: Value =
        serde_json::from_slice(&get(format!("/v2/{repo}/manifests/1"), OCI_MANIFEST).await?)
            .map_err(|e| e.to_string())?;
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let mut config: Value =
        serde_json::from_slice(&get(format!("/v2/{repo}/blobs/{config_digest}"), "*/*").await?)
            .map_err(|e| e.to_string())?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if layers.len() < 2 || layers.len() != diff_ids.len() {
        return Err(format!("{repo}:1 is not busybox + layers"));
    }
    let mut new_layers = vec![layers[0].clone()];
    let mut new_diff_ids = vec![diff_ids[0].clone()];
    for (i, l) in layers.iter().enumerate().skip(1) {
        let size = l["size"].as_u64().unwrap_or(5 << 20) as usize;
        let tar = random_tar(&format!("bench-{i}"), size);
        let d = push_blob(registry, &repo, &tar).await?;
        new_layers.push(serde_json::json!({
            "mediaType": OCI_LAYER_TAR, "digest": d, "size": tar.len()
        }));
        new_diff_ids.push(Value::String(d));
    }
    config["rootfs"]["diff_ids"] = Value::Array(new_diff_ids);
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_digest = push_blob(registry, &repo, &config).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len()
        },
        "layers": new_layers,
    });
    let body = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let put = http(
        registry,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", OCI_MANIFEST)],
        &body,
    )
    .await
    .map_err(|e| e.to_string())?;
    if put.status != 201 {
        return Err(format!(
            "manifest push failed: HTTP {}: {}",
            put.status,
            String::from_utf8_lossy(&put.body)
        ));
    }
    Ok(())
}
