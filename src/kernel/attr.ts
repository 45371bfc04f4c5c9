export const ATTR_BYTES = 128;
// BPF_MAP_CREATE
export const CREATE_MAP_TYPE = 0;
export const CREATE_KEY_SIZE = 4;
export const CREATE_VALUE_SIZE = 8;
export const CREATE_MAX_ENTRIES = 12;
export const CREATE_MAP_FLAGS = 16;
export const CREATE_INNER_MAP_FD = 20;
export const CREATE_NUMA_NODE = 24;
export const CREATE_MAP_NAME = 28;
export const CREATE_BTF_FD = 48;
export const CREATE_BTF_KEY_TYPE_ID = 52;
export const CREATE_BTF_VALUE_TYPE_ID = 56;
// BPF_BTF_LOAD, BPF_BTF_GET_FD_BY_ID, struct bpf_btf_info
export const BTF_LOAD_BTF = 0;
export const BTF_LOAD_LOG_BUF = 8;
export const BTF_LOAD_SIZE = 16;
export const BTF_LOAD_LOG_SIZE = 20;
export const BTF_LOAD_LOG_LEVEL = 24;
export const BTF_INFO_BYTES = 32;
export const BTF_INFO_BTF = 0;
export const BTF_INFO_BTF_SIZE = 8;
// BPF_MAP_*_ELEM
export const ELEM_MAP_FD = 0;
export const ELEM_KEY = 8;
export const ELEM_VALUE = 16;
export const ELEM_FLAGS = 24;
// BPF_MAP_*_BATCH
export const BATCH_IN_BATCH = 0;
export const BATCH_OUT_BATCH = 8;
export const BATCH_KEYS = 16;
export const BATCH_VALUES = 24;
export const BATCH_COUNT = 32;
export const BATCH_MAP_FD = 36;
export const BATCH_ELEM_FLAGS = 40;
export const BATCH_FLAGS = 48;
// BPF_OBJ_GET_INFO_BY_FD and struct bpf_map_info
export const INFO_BPF_FD = 0;
export const INFO_LEN = 4;
export const INFO_PTR = 8;
export const MAP_INFO_BYTES = 88;
export const MAP_INFO_TYPE = 0;
export const MAP_INFO_ID = 4;
export const MAP_INFO_KEY_SIZE = 8;
export const MAP_INFO_VALUE_SIZE = 12;
export const MAP_INFO_MAX_ENTRIES = 16;
export const MAP_INFO_MAP_FLAGS = 20;
export const MAP_INFO_NAME = 24;
export const MAP_INFO_NAME_BYTES = 16;
export const MAP_INFO_BTF_ID = 64;
export const MAP_INFO_BTF_KEY_TYPE_ID = 68;
export const MAP_INFO_BTF_VALUE_TYPE_ID = 72;

/** What BPF_OBJ_GET_INFO_BY_FD says of a map (struct bpf_map_info). */
export interface KernelMapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export function decodeMapInfo(dv: DataView): KernelMapInfo {
  let name = "";
  for (let i = 0; i < MAP_INFO_NAME_BYTES; i++) {
    const c = dv.getUint8(MAP_INFO_NAME + i);
    if (c === 0) break;
    name += String.fromCharCode(c);
  }
  return {
    type: dv.getUint32(MAP_INFO_TYPE, true),
    id: dv.getUint32(MAP_INFO_ID, true),
    keySize: dv.getUint32(MAP_INFO_KEY_SIZE, true),
    valueSize: dv.getUint32(MAP_INFO_VALUE_SIZE, true),
    maxEntries: dv.getUint32(MAP_INFO_MAX_ENTRIES, true),
    flags: dv.getUint32(MAP_INFO_MAP_FLAGS, true),
    name,
    btfId: dv.getUint32(MAP_INFO_BTF_ID, true),
    btfKeyTypeId: dv.getUint32(MAP_INFO_BTF_KEY_TYPE_ID, true),
    btfValueTypeId: dv.getUint32(MAP_INFO_BTF_VALUE_TYPE_ID, true),
  };
}

/** "Not written by the kernel" marker for out_batch: no bucket index reaches it. */
export const OUT_BATCH_UNSET = 0xffffffff;
