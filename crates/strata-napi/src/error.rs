//! How core errors reach JS: as data on the error object, never inside its message.
//!
//! A [`Failure`] holds what the TS facade needs (`code`, `message`, `errno`, `path`); it becomes
//! a JS `Error` whose own properties are `code` (an [`ErrorCode`] name), `syscode` (the errno's
//! name), `errno` (positive) and `path`. Synchronous functions build it at once with the caller's
//! `Env`; an `AsyncTask` cannot (its `compute` runs on a pool thread), so [`Job`] keeps the
//! failure until `reject`, which runs on the JS thread and builds the object there.
//! [`blocking`] is the common task: one closure on the pool, its result turned into the JS value
//! with `From`; a task with its own state (progress callbacks, several steps) implements
//! [`NativeTask`] itself.
use napi::bindgen_prelude::*;
use napi::{Env, Task};
use strata_core::error::{errno_name, Coded, ErrorCode};

/// A core error on its way to JS.
#[derive(Debug)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    pub errno: Option<i32>,
    pub path: Option<String>,
    /// Registry errors: the HTTP status and the registry's error code.
    pub status: Option<u16>,
    pub registry_code: Option<String>,
}

impl<E: Coded> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: e.code(),
            message: e.to_string(),
            errno: e.errno(),
            path: e.path(),
            status: e.http_status(),
            registry_code: e.registry_code(),
        }
    }
}

impl Failure {
    /// A failure with no errno or path.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), errno: None, path: None, status: None, registry_code: None }
    }

    /// The JS error object, as a `napi::Error` that hands that very object to JS when thrown
    /// or used to reject a promise.
    pub fn into_js(self, env: &Env) -> Error {
        match self.build(env) {
            Ok(e) => e,
            // Out of memory or a pending exception: the message at least gets through.
            Err(e) => Error::new(Status::GenericFailure, format!("{}: {} ({e})", self.code, self.message)),
        }
    }

    fn build(&self, env: &Env) -> Result<Error> {
        let mut obj = env.create_error(Error::new(Status::GenericFailure, self.message.clone()))?;
        obj.set_named_property("code", self.code.as_str())?;
        if let Some(errno) = self.errno {
            obj.set_named_property("errno", errno)?;
            if let Some(name) = errno_name(errno) {
                obj.set_named_property("syscode", name)?;
            }
        }
        if let Some(p) = &self.path {
            obj.set_named_property("path", p.as_str())?;
        }
        if let Some(s) = self.status {
            obj.set_named_property("status", s as u32)?;
        }
        if let Some(c) = &self.registry_code {
            obj.set_named_property("registryCode", c.as_str())?;
        }
        Ok(Error::from(obj.to_unknown()))
    }
}

/// A failure handed to JS as a value (a callback's `err` argument).
impl ToNapiValue for Failure {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        let err = val.into_js(&Env::from_raw(env));
        // SAFETY: called by napi on the JS thread of `env`, as `ToNapiValue` requires.
        unsafe { Error::to_napi_value(env, err) }
    }
}

/// Result of a synchronous export: map core errors with [`throw`].
pub fn throw<E: Into<Failure>>(env: &Env) -> impl FnOnce(E) -> Error + '_ {
    move |e| e.into().into_js(env)
}

/// The work of an `AsyncTask` whose failures reach JS as [`Failure`]s.
pub trait NativeTask: Send + Sized {
    type Output: Send + Sized + 'static;
    type JsValue: ToNapiValue + TypeName;
    /// Runs on a libuv pool thread.
    fn compute(&mut self) -> std::result::Result<Self::Output, Failure>;
    /// Runs on the JS thread.
    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue>;
}

/// Runs a [`NativeTask`] as an `AsyncTask`, keeping its failure for `reject`.
pub struct Job<T> {
    task: T,
    failure: Option<Failure>,
}

impl<T: NativeTask> Task for Job<T> {
    type Output = T::Output;
    type JsValue = T::JsValue;
    fn compute(&mut self) -> Result<T::Output> {
        self.task.compute().map_err(|f| {
            let e = Error::new(Status::GenericFailure, f.message.clone());
            self.failure = Some(f);
            e
        })
    }
    fn resolve(&mut self, env: Env, output: T::Output) -> Result<T::JsValue> {
        self.task.resolve(env, output)
    }
    fn reject(&mut self, env: Env, err: Error) -> Result<T::JsValue> {
        Err(match self.failure.take() {
            Some(f) => f.into_js(&env),
            None => err,
        })
    }
}

/// `AsyncTask` of a [`NativeTask`].
pub fn job<T: NativeTask>(task: T) -> AsyncTask<Job<T>> {
    AsyncTask::new(Job { task, failure: None })
}

type Work<O> = Box<dyn FnOnce() -> std::result::Result<O, Failure> + Send>;

/// The common [`NativeTask`]: one blocking call on the pool, its result converted to the JS
/// value with `From` (the identity where the core already returns a napi value).
pub struct Blocking<O, J> {
    work: Option<Work<O>>,
    js: std::marker::PhantomData<fn() -> J>,
}

impl<O: Send + 'static, J: From<O> + ToNapiValue + TypeName> NativeTask for Blocking<O, J> {
    type Output = O;
    type JsValue = J;
    fn compute(&mut self) -> std::result::Result<O, Failure> {
        let work = self.work.take().expect("computed once");
        work()
    }
    fn resolve(&mut self, _: Env, out: O) -> Result<J> {
        Ok(J::from(out))
    }
}

/// The `AsyncTask` of a [`Blocking`] call: resolves with `J` made from the call's `O`.
pub type BlockingTask<O, J = O> = AsyncTask<Job<Blocking<O, J>>>;

/// Runs `work` off the JS thread; its error reaches JS as a [`Failure`].
pub fn blocking<O, J, E>(work: impl FnOnce() -> std::result::Result<O, E> + Send + 'static) -> BlockingTask<O, J>
where
    O: Send + 'static,
    J: From<O> + ToNapiValue + TypeName,
    E: Into<Failure>,
{
    job(Blocking { work: Some(Box::new(move || work().map_err(Into::into))), js: std::marker::PhantomData })
}

/// Every error code, in the core's order: the one list the TS `StrataErrorCode` union is
/// checked against.
#[napi_derive::napi]
pub fn error_codes() -> Vec<&'static str> {
    ErrorCode::ALL.iter().map(|c| c.as_str()).collect()
}

/// The errno name of `errno` (`2` → `ENOENT`), `null` for a number Linux does not define.
#[napi_derive::napi(js_name = "errnoName")]
pub fn errno_name_of(errno: i32) -> Option<&'static str> {
    errno_name(errno)
}
