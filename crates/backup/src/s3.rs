//! An S3-compatible bucket as a target (object_store): each key is an object under the
//! repository's prefix. S3 writes a whole object or nothing, which is the atomicity the
//! repository needs; the target worker gives every call its deadline.

use futures::TryStreamExt;
use mailfleet_core::config::S3Location;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::BackupError;
use crate::target::Target;

/// A bucket and prefix.
pub struct S3Target {
    store: AmazonS3,
    prefix: String,
    describe: String,
    runtime: tokio::runtime::Runtime,
}

fn err(what: String) -> impl FnOnce(object_store::Error) -> BackupError {
    move |e| match e {
        object_store::Error::NotFound { .. } => {
            BackupError::NotFound(format!("{what}: not in the repository"))
        }
        e => BackupError::Target {
            what,
            message: e.to_string(),
        },
    }
}

impl S3Target {
    /// Connects to the bucket (nothing is sent until the first operation).
    pub fn new(loc: &S3Location) -> Result<Self, BackupError> {
        // ring and aws-lc-rs are both linked: say which one rustls uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&loc.bucket)
            .with_region(&loc.region);
        if let Some(e) = &loc.endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(file)) = (&loc.access_key_id, &loc.secret_access_key_file) {
            let secret = std::fs::read_to_string(file).map_err(BackupError::io(file))?;
            let secret = secret.lines().next().unwrap_or("").trim().to_string();
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store = b.build().map_err(|e| BackupError::Target {
            what: "configure S3".into(),
            message: e.to_string(),
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BackupError::Target {
                what: "start the S3 client".into(),
                message: e.to_string(),
            })?;
        Ok(S3Target {
            store,
            prefix: loc.prefix.clone(),
            describe: format!("s3://{}/{}", loc.bucket, loc.prefix),
            runtime,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }
}

impl Target for S3Target {
    fn put(&self, key: &str, data: &[u8]) -> Result<(), BackupError> {
        let payload = PutPayload::from(data.to_vec());
        self.runtime
            .block_on(self.store.put(&self.path(key), payload))
            .map(|_| ())
            .map_err(err(format!("write {key}")))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, BackupError> {
        self.runtime.block_on(async {
            let r = self
                .store
                .get(&self.path(key))
                .await
                .map_err(err(format!("read {key}")))?;
            let bytes = r.bytes().await.map_err(err(format!("read {key}")))?;
            Ok(bytes.to_vec())
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackupError> {
        let what = format!("read {key} at {offset}");
        let bytes = self
            .runtime
            .block_on(self.store.get_range(&self.path(key), offset..offset + len))
            .map_err(err(what))?;
        if bytes.len() as u64 != len {
            return Err(BackupError::Corrupt(format!(
                "{key} is shorter than its index says"
            )));
        }
        Ok(bytes.to_vec())
    }

    fn exists(&self, key: &str) -> Result<bool, BackupError> {
        match self.runtime.block_on(self.store.head(&self.path(key))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(err(format!("stat {key}"))(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let root = self.path(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut keys: Vec<String> = self.runtime.block_on(async {
            self.store
                .list(Some(&root))
                .map_ok(|m| {
                    let k = m.location.to_string();
                    k.strip_prefix(&strip).unwrap_or(&k).to_string()
                })
                .try_collect()
                .await
                .map_err(err(format!("list {prefix}")))
        })?;
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self.runtime.block_on(self.store.delete(&self.path(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(err(format!("delete {key}"))(e)),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
