"""The SAMP client: registration, reconnection, sending, replying.

:class:`SampBridge` registers with the hub as ``vo-al`` (name, description,
icon, version), subscribes to the MTypes of :data:`~vo_al.samp.messages.HANDLED`,
and passes every incoming call, notification and response, and every change
of the connection, to one ``dispatch(item)`` hook (see
:mod:`vo_al.samp.inbox`). Its callbacks run on the SAMP client's server
threads and never touch the session; they answer only ``samp.app.ping``
and hub events themselves.

A watchdog thread checks the registration every ``check_interval`` seconds:
when the hub goes away the bridge drops the connection and keeps looking
for a hub (the same one restarted, or any new one) and registers again.
Nothing a hub does stops it: a JSAMP hub that is starting or stopping
answers faults ("Hub is stopped"), a hung one answers nothing (every call
to a hub has a timeout, :data:`~vo_al.samp.hub.HUB_TIMEOUT`), and any
failure of one check is logged once and the next check runs as usual.

Subscriptions carry ``samp.mostly-harmless`` annotations
(:func:`~vo_al.samp.trust.subscription_annotations`), so a hub with the
Web Profile keeps web pages from sending vo-al labels or file URLs.

Everything sent is checked to be strings, lists and maps
(:func:`~vo_al.samp.messages.check_samp_value`) and made ASCII
(:func:`~vo_al.samp.messages.to_ascii`) before it leaves.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyvo.samp import SAMPClient, SAMPClientError, SAMPHubError, SAMPProxyError
from pyvo.samp import conf as samp_conf

from .. import __version__
from ..events import SampStatus
from .callable import harden
from .errors import HubUnavailable, SampError
from .hub import HUB_ERRORS, LOOPBACK, HubProxy, OwnHub, running_hub
from .inbox import Call, Response
from .messages import HANDLED, HUB_EVENTS, PING, check_samp_value, error, ok, to_ascii
from .trust import subscription_annotations

__all__ = ["SampBridge", "Pending", "client_metadata", "NAME"]

NAME = "vo-al"

_log = logging.getLogger(__name__)

#: What a dead, dying, hung or unreachable hub raises through the XML-RPC proxies
#: (``xmlrpc.client.Error`` includes the faults of a hub that is stopping).
_RPC_ERRORS = (*HUB_ERRORS, SAMPProxyError, SAMPHubError, SAMPClientError)

_PENDING_KEPT = 256

#: Longest wait for the watchdog when closing.
_JOIN_S = 5.0


def client_metadata() -> dict:
    """vo-al's SAMP metadata (all strings)."""
    metadata = {
        "samp.name": NAME,
        "samp.description.text": "vo-al: active deep learning for rare spectra; sends "
                                 "candidate tables and spectra, takes labels back",
        "vo-al.version": __version__,
    }
    icon = Path(__file__).resolve().parents[2] / "resources" / "vo-al.svg"
    if icon.is_file():
        metadata["samp.icon.url"] = icon.as_uri()
    return metadata


class Pending:
    """The responses to one call vo-al made, filled in as they arrive.

    Attributes
    ----------
    mtype : str
    tag : str
        The message tag the responses carry.
    """

    def __init__(self, mtype: str, tag: str):
        self.mtype = mtype
        self.tag = tag
        self._recipients: list[str] | None = None
        self._responses: dict[str, dict] = {}
        self._condition = threading.Condition()

    def _expect(self, recipients):
        with self._condition:
            self._recipients = list(recipients)
            self._condition.notify_all()

    def _add(self, responder_id: str, response: dict):
        with self._condition:
            self._responses[responder_id] = response
            self._condition.notify_all()

    @property
    def recipients(self) -> list[str]:
        """Client ids the call went to (empty until the hub said)."""
        with self._condition:
            return list(self._recipients or [])

    @property
    def done(self) -> bool:
        """Whether every recipient has answered."""
        with self._condition:
            return self._done()

    def _done(self) -> bool:
        return self._recipients is not None and set(self._recipients) <= set(self._responses)

    def wait(self, timeout: float) -> dict[str, dict]:
        """Block until every recipient answered or ``timeout`` seconds passed.

        Never call it on a GUI thread.

        Returns
        -------
        dict
            ``responder id -> response`` of the answers so far.
        """
        with self._condition:
            self._condition.wait_for(self._done, timeout)
            return dict(self._responses)


class _Client(SAMPClient):
    """``SAMPClient`` whose callbacks hand everything to the bridge and never raise."""

    def __init__(self, hub_proxy, bridge: "SampBridge"):
        with samp_conf.set_temp("use_internet", False):  # no network probe: loopback only
            super().__init__(hub_proxy, metadata=client_metadata(), addr=LOOPBACK)
        harden(self.client)  # a peer hanging up mid-request must not spin a thread forever
        for mtype in ("samp.app.ping", "client.env.get"):  # the bridge answers ping itself
            self.unbind_receive_call(mtype, declare=False)
        self._bridge = bridge

    def receive_call(self, private_key, sender_id, msg_id, message):
        if private_key == self.get_private_key():
            self._bridge._on_message(sender_id, msg_id, message)
        return ""

    def receive_notification(self, private_key, sender_id, message):
        if private_key == self.get_private_key():
            self._bridge._on_message(sender_id, None, message)
        return ""

    def receive_response(self, private_key, responder_id, msg_tag, response):
        if private_key == self.get_private_key():
            self._bridge._on_response(responder_id, msg_tag, response)
        return ""


@dataclass(frozen=True)
class _Connection:
    proxy: HubProxy
    client: _Client
    private_key: str
    public_id: str
    hub_url: str

    def close(self, unregister: bool):
        if unregister:
            try:
                self.client.unregister()
            except _RPC_ERRORS as exc:
                _log.info("unregistering from %s failed: %s", self.hub_url, exc)
        try:
            self.client.stop()
        except SAMPClientError as exc:
            _log.warning("SAMP client server did not stop: %s", exc)
        self.proxy.disconnect()


class SampBridge:
    """vo-al's SAMP client.

    Parameters
    ----------
    dispatch : callable
        ``dispatch(item)`` with a :class:`~vo_al.samp.inbox.Call`,
        :class:`~vo_al.samp.inbox.Response` or
        :class:`~vo_al.events.SampStatus`; called on SAMP threads, it must
        only queue the item for the owning thread.
    own_hub : bool
        Start a hub in this process whenever none is running.
    check_interval : float
        Seconds between checks of the registration (and attempts to
        reconnect while there is no hub).

    Examples
    --------
    >>> inbox = QueueInbox()                                    # doctest: +SKIP
    >>> with SampBridge(inbox.put) as bridge:
    ...     bridge.wait_connected(5)
    ...     bridge.call(load_table(url, table_id, "candidates")).wait(10)
    """

    def __init__(self, dispatch: Callable[[object], None], *, own_hub: bool = False,
                 check_interval: float = 1.0):
        self._dispatch = dispatch
        self._own_hub = OwnHub() if own_hub else None
        self._interval = check_interval
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        self._names: dict[str, str] = {}
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._tags = itertools.count(1)
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._failed = ""  # the last check's failure, logged once

    # ------------------------------------------------------------------
    # Life cycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> bool:
        """Start the own hub if asked, connect if a hub is there, start the watchdog.

        Returns
        -------
        bool
            Whether vo-al is registered now (else the watchdog keeps trying).
        """
        self._check()
        self._watchdog = threading.Thread(target=self._watch, name="vo-al SAMP watchdog",
                                          daemon=True)
        self._watchdog.start()
        return self.connected

    def close(self):
        """Unregister, stop the client and the watchdog, and stop the own hub."""
        self._closing.set()
        self._wake.set()
        if self._watchdog is not None:
            self._watchdog.join(_JOIN_S)  # a daemon stuck on a hung hub is left behind
        with self._lock:
            conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None:
            conn.close(unregister=True)
        if self._own_hub is not None:
            self._own_hub.stop()

    @property
    def connected(self) -> bool:
        """Whether vo-al is registered with a hub."""
        return self._connected.is_set()

    @property
    def public_id(self) -> str | None:
        """vo-al's client id on the hub, or None."""
        conn = self._conn
        return conn.public_id if conn else None

    @property
    def hub_url(self) -> str | None:
        """The XML-RPC URL of the hub vo-al is registered with, or None."""
        conn = self._conn
        return conn.hub_url if conn else None

    @property
    def callback_address(self) -> tuple[str, int] | None:
        """``(host, port)`` where the hub calls vo-al back, or None."""
        conn = self._conn
        return tuple(conn.client.client.server_address[:2]) if conn else None

    def wait_connected(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a registration; never on a GUI thread."""
        return self._connected.wait(timeout)

    def _emit(self, item):
        try:
            self._dispatch(item)
        except Exception:  # the owner's hook failing must not kill a SAMP thread
            _log.exception("the SAMP dispatch hook failed on %r", item)

    def _watch(self):
        """The watchdog's loop: it never ends before :meth:`close`, whatever a check raises."""
        while not self._closing.is_set():
            self._check()
            self._wake.wait(self._interval)
            self._wake.clear()

    def _check(self):
        """Drop a dead connection, register when not registered; never raises.

        A failure is logged once, not at every check while it lasts.
        """
        try:
            conn = self._conn
            if conn is not None and not self._alive(conn):
                self._drop(conn, "the SAMP hub went away; looking for a hub to register with")
            if self._conn is None:
                self._try_connect()
            self._failed = ""
        except Exception as exc:  # the watchdog must outlive anything a hub does
            if repr(exc) != self._failed:
                _log.exception("checking the SAMP registration failed; trying again")
            self._failed = repr(exc)

    @staticmethod
    def _alive(conn: _Connection) -> bool:
        try:
            conn.proxy.get_metadata(conn.private_key, conn.public_id)
            return True
        except _RPC_ERRORS:
            return False

    def _drop(self, conn: _Connection, reason: str, unregister: bool = False):
        with self._lock:
            if self._conn is not conn:
                return
            self._conn = None
            self._names.clear()
        self._connected.clear()
        conn.close(unregister)
        self._emit(SampStatus(False, reason))

    def _hub_params(self) -> dict | None:
        """The running hub's lockfile entries; starts the own hub first if asked and none runs."""
        if self._own_hub is None:
            return running_hub()
        if self._own_hub.start():
            self._emit(SampStatus(False, "started vo-al's own SAMP hub (loopback only)"))
        return self._own_hub.params or running_hub()

    def _try_connect(self):
        params = None if self._closing.is_set() else self._hub_params()
        if params is None:
            return
        proxy = HubProxy()
        client = None
        try:
            proxy.connect(hub_params=params, pool_size=4)
            client = _Client(proxy, self)
            client.start()
            client.register()
        except Exception as exc:  # no client thread is left running, whatever failed
            if client is not None and client.is_running:
                client.stop()
            proxy.disconnect()
            if not isinstance(exc, _RPC_ERRORS):
                raise  # logged by the watchdog
            _log.info("registering with the SAMP hub failed: %s", exc)
            return
        url = params.get("samp.hub.xmlrpc.url", "?")
        conn = _Connection(proxy, client, client.get_private_key(), client.get_public_id(), url)
        with self._lock:
            closing = self._closing.is_set()
            if not closing:
                self._conn = conn  # before subscribing: the first message can be answered
        if closing:  # close() ran meanwhile: leave no registration behind
            conn.close(unregister=True)
            return
        try:
            client.declare_subscriptions({mtype: subscription_annotations(mtype)
                                          for mtype in (PING, *HUB_EVENTS, *HANDLED)})
        except _RPC_ERRORS as exc:
            self._drop(conn, f"subscribing with the SAMP hub at {url} failed: {exc}",
                       unregister=True)
            return
        self._connected.set()
        self._emit(SampStatus(True, f"registered with the SAMP hub at {url} as {conn.public_id}"))

    def _require(self) -> _Connection:
        conn = self._conn
        if conn is None:
            raise HubUnavailable("vo-al is not registered with a SAMP hub")
        return conn

    # ------------------------------------------------------------------
    # Incoming (SAMP server threads)

    def _on_message(self, sender_id, msg_id, message):
        """Route one message; never raises (the SAMP library would swallow the reply)."""
        try:
            mtype = message.get("samp.mtype", "") if isinstance(message, dict) else ""
            params = message.get("samp.params", {}) if isinstance(message, dict) else None
            if mtype == PING:
                self._answer(msg_id, ok())
            elif mtype in HUB_EVENTS:
                self._hub_event(mtype, params)
                self._answer(msg_id, ok())
            elif mtype in HANDLED:
                self._emit(Call(mtype, params, sender_id, self.name_of(sender_id), msg_id))
            else:
                self._answer(msg_id, error(f"vo-al does not handle {str(mtype)[:100]!r}"))
        except Exception as exc:  # a callback must never raise into the SAMP library
            _log.exception("SAMP message from %s could not be taken", sender_id)
            self._answer(msg_id, error(f"vo-al could not take the message: {exc}"))

    def _answer(self, msg_id, response):
        if msg_id is not None:
            self.reply(msg_id, response)

    def _hub_event(self, mtype: str, params):
        params = params if isinstance(params, dict) else {}
        client_id = str(params.get("id", ""))
        if mtype == "samp.hub.event.shutdown":
            self._wake.set()  # the watchdog notices at once
        elif mtype == "samp.hub.event.metadata":
            metadata = params.get("metadata")
            name = metadata.get("samp.name") if isinstance(metadata, dict) else None
            with self._lock:
                self._names[client_id] = str(name or client_id)
            self._emit(SampStatus(True, f"{client_id} is {name or 'unnamed'}"))
        elif mtype == "samp.hub.event.register":
            self._emit(SampStatus(True, f"client {client_id} registered"))
        elif mtype == "samp.hub.event.subscriptions":
            self._emit(SampStatus(True, f"{self.name_of(client_id)} ({client_id}) subscribed"))
        else:
            with self._lock:
                name = self._names.pop(client_id, client_id)
            self._emit(SampStatus(True, f"client {name} ({client_id}) left"))

    def _on_response(self, responder_id, tag, response):
        try:
            with self._lock:
                pending = self._pending.get(tag)
            if pending is None:
                return
            response = response if isinstance(response, dict) else {"samp.status": "samp.error"}
            pending._add(responder_id, response)
            if pending.done:
                with self._lock:
                    self._pending.pop(tag, None)
            self._emit(Response(pending.mtype, responder_id, self.name_of(responder_id),
                                response))
        except Exception:  # a callback must never raise into the SAMP library
            _log.exception("SAMP response from %s could not be taken", responder_id)

    def name_of(self, client_id: str) -> str:
        """A client's ``samp.name`` (its id when it has none), cached."""
        with self._lock:
            if client_id in self._names:
                return self._names[client_id]
        conn = self._conn
        name = ""
        if conn is not None:
            try:
                name = str(conn.proxy.get_metadata(conn.private_key, client_id)
                           .get("samp.name", ""))
            except _RPC_ERRORS:
                name = ""
        if name:
            with self._lock:
                self._names[client_id] = name
        return name or client_id

    # ------------------------------------------------------------------
    # Outgoing (any thread)

    def reply(self, msg_id: str, response: dict) -> bool:
        """Answer a call (texts made ASCII); returns False when the hub could not be told.

        When the hub refuses the response itself, a plain ``samp.error``
        saying so goes instead: the caller must not wait for nothing.
        """
        check_samp_value(response, "response")
        conn = self._conn
        if conn is None:
            _log.warning("reply to %s dropped: not registered", msg_id)
            return False
        try:
            conn.proxy.reply(conn.private_key, msg_id, to_ascii(response))
            return True
        except SAMPProxyError as exc:
            _log.warning("the hub refused the reply to %s: %s", msg_id, exc.faultString)
            refused = error(f"vo-al's reply was refused by the hub: {exc.faultString}"[:500])
            return self._send_reply(conn, msg_id, to_ascii(refused))
        except _RPC_ERRORS as exc:
            _log.warning("reply to %s failed: %s", msg_id, exc)
            return False

    @staticmethod
    def _send_reply(conn: _Connection, msg_id: str, response: dict) -> bool:
        try:
            conn.proxy.reply(conn.private_key, msg_id, response)
            return True
        except _RPC_ERRORS as exc:
            _log.warning("reply to %s failed: %s", msg_id, exc)
            return False

    def call(self, message: dict, recipient: str | None = None) -> Pending:
        """Send a call to one client or to all subscribed; responses fill the Pending.

        Raises
        ------
        TypeError
            When the message holds anything but strings, lists and maps.
        HubUnavailable
            When vo-al is not registered or the hub cannot be reached.
        SampError
            When the hub refuses the call (e.g. the recipient is not subscribed).
        """
        check_samp_value(message)
        message = to_ascii(message)
        conn = self._require()
        tag = f"vo-al-{next(self._tags)}"
        pending = Pending(message["samp.mtype"], tag)
        with self._lock:
            self._pending[tag] = pending
            while len(self._pending) > _PENDING_KEPT:
                self._pending.popitem(last=False)
        try:
            if recipient is None:
                pending._expect(self._call_all(conn, tag, message))
            else:
                conn.proxy.call(conn.private_key, recipient, tag, message)
                pending._expect([recipient])
        except _RPC_ERRORS as exc:
            with self._lock:
                self._pending.pop(tag, None)
            raise _send_error(exc) from exc
        return pending

    @staticmethod
    def _call_all(conn: _Connection, tag: str, message: dict) -> list[str]:
        """``callAll``; when it fails (JSAMP's hub fails the whole call when one
        subscriber is unreachable, e.g. a killed TOPCAT), call each subscriber."""
        try:
            return list(conn.proxy.call_all(conn.private_key, tag, message))
        except SAMPProxyError as exc:
            _log.info("callAll of %s failed (%s); calling each client", tag, exc.faultString)
        reached = []
        for client_id in conn.proxy.get_subscribed_clients(conn.private_key,
                                                           message["samp.mtype"]):
            try:
                conn.proxy.call(conn.private_key, client_id, tag, message)
                reached.append(client_id)
            except SAMPProxyError as exc:
                _log.warning("%s not sent to %s: %s", tag, client_id, exc.faultString)
        return reached

    def notify(self, message: dict, recipient: str | None = None) -> list[str]:
        """Send a notification to one client or to all subscribed.

        Returns
        -------
        list of str
            The recipients' ids.

        Raises
        ------
        TypeError, HubUnavailable, SampError
            As for :meth:`call`.
        """
        check_samp_value(message)
        message = to_ascii(message)
        conn = self._require()
        try:
            if recipient is None:
                return list(conn.proxy.notify_all(conn.private_key, message))
            conn.proxy.notify(conn.private_key, recipient, message)
            return [recipient]
        except _RPC_ERRORS as exc:
            raise _send_error(exc) from exc

    def clients(self) -> dict[str, str]:
        """``id -> samp.name`` of the other registered clients (the hub included)."""
        conn = self._require()
        try:
            ids = conn.proxy.get_registered_clients(conn.private_key)
        except _RPC_ERRORS as exc:
            raise _send_error(exc) from exc
        return {client_id: self.name_of(client_id) for client_id in ids}

    def subscribers(self, mtype: str) -> list[str]:
        """Ids of the other clients subscribed to ``mtype``.

        Raises
        ------
        HubUnavailable, SampError
            As for :meth:`call`.
        """
        conn = self._require()
        try:
            ids = conn.proxy.get_subscribed_clients(conn.private_key, mtype)
        except _RPC_ERRORS as exc:
            raise _send_error(exc) from exc
        return [client_id for client_id in ids if client_id != conn.public_id]

    def client_id(self, name: str) -> str | None:
        """The id of the first client whose ``samp.name`` is ``name`` (any case)."""
        wanted = name.casefold()
        return next((i for i, n in self.clients().items() if n.casefold() == wanted), None)


def _send_error(exc: Exception) -> SampError:
    if isinstance(exc, SAMPProxyError):
        return SampError(f"the SAMP hub refused: {exc.faultString}")
    return HubUnavailable(f"the SAMP hub cannot be reached: {exc}")
