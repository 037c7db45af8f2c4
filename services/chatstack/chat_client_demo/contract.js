// Names and numbers the browser client shares with the services.
//
// Each constant marked "contract: <key>" must equal that key of
// services/chatstack/contract.toml (tests/repo/test_client_contract.py checks it; the
// client cannot read the TOML at run time). Constants marked "client:" are this client's
// own choices. No other file of the client may hardcode these values.

export const WS_PATH = "/ws"; // contract: routes.websocket
export const MESSAGES_PATH = "/api/rooms/{room}/messages"; // contract: routes.messages
export const ROOM_PATTERN = "^[A-Za-z0-9_-]{1,64}$"; // contract: protocol.room_pattern
export const NICK_PATTERN = "^[A-Za-z0-9_.-]{1,32}$"; // contract: protocol.nick_pattern
export const CLIENT_MSG_ID_PATTERN = "^[A-Za-z0-9_.:-]{1,64}$"; // contract: protocol.client_msg_id_pattern
export const CLIENT_TOKEN_PATTERN = "^[A-Za-z0-9_-]{22,64}$"; // contract: protocol.client_token_pattern
export const RECOVERY_OVERLAP_MS = 10000; // contract: protocol.recovery_overlap_ms
export const RECOVERY_RECHECK_MS = 1000; // contract: protocol.recovery_recheck_ms
export const PAGE_LIMIT_DEFAULT = 100; // contract: protocol.page_limit_default
export const PAGE_LIMIT_MAX = 500; // contract: protocol.page_limit_max
export const CLOSE_POLICY_VIOLATION = 1008; // contract: protocol.close_policy_violation
export const CLOSE_SERVICE_RESTART = 1012; // contract: protocol.close_service_restart

export const RECONNECT_QUICK_TRIES = 3; // client: reconnects tried quickly before backing off
export const RECONNECT_QUICK_MS = 400; // client: mean pause of a quick reconnect (jittered ±50 %)
export const RECONNECT_BASE_MS = 2000; // client: first backoff window (equal jitter: half to all of it)
export const RECONNECT_MAX_MS = 30000; // client: cap of the exponential backoff window
export const RECONNECT_STABLE_MS = 5000; // client: a socket open this long resets the backoff
export const RETRY_PAUSE_MS = 1000; // client: pause before resending after `unavailable`
export const ACK_TIMEOUT_MS = 15000; // client: resend a say not acked this long (> publish timeout)
export const ACK_CHECK_EVERY_MS = 1000; // client: how often unacked says are looked at
export const MAX_SEND_ATTEMPTS = 5; // client: then the say is shown as not sent
export const JOIN_TIMEOUT_MS = 10000; // client: a join without our own presence by then is retried
export const ERROR_SHOW_MS = 20000; // client: how long an error stays on screen
export const OWN_IDS_KEPT = 500; // client: ids of our own messages a tab remembers over reloads
