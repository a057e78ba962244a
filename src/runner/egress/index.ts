export { forbiddenAddressReason } from './address-rules.ts';
export {
  type CheckOptions,
  checkDestination,
  connectChecked,
  DEFAULT_EGRESS_PORTS,
  type Dial,
  defaultDial,
  defaultResolve,
  hostAllowed,
  normalizeHost,
  parseAuthority,
  type Resolve,
  type Target,
  type Verdict,
} from './destination.ts';
export {
  EGRESS_SOCKET_NAME,
  type EgressDecisionEvent,
  type EgressLogger,
  type EgressProxy,
  type EgressProxyOptions,
  prepareEgressSocketDir,
  startEgressProxy,
} from './egress-proxy.ts';
export {
  type WebFetchFailure,
  type WebFetchOptions,
  type WebFetchPage,
  type WebFetchResult,
  webFetch,
} from './web-fetch.ts';
