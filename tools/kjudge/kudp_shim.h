/* kudp_shim.h -- just enough of the kernel's headers for net/netfilter/nf_conntrack_proto_udp.c
 * (every layout from 3.10 to 6.18) to compile unmodified in userspace.  Everything the file
 * calls that is not its own is defined here or in kudp_glue.c; what matters to the judge
 * (timeouts asked for, status bits, verdicts, log texts) is recorded, the rest is inert. */
#ifndef KUDP_SHIM_H
#define KUDP_SHIM_H
#include <stddef.h>
#include <stdbool.h>
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32; typedef unsigned long long u64;
typedef u8 u_int8_t; typedef u16 u_int16_t; typedef u32 u_int32_t; typedef int s32;
typedef u16 __be16; typedef u32 __be32; typedef u16 __sum16;
#define HZ 1000
#define __read_mostly
#define __net_init
#define __init
#define __exit
#define __user
#define __printf(a, b)
#define __cold
#define unlikely(x) (x)
#define likely(x) (x)
#define READ_ONCE(x) (x)
#define WRITE_ONCE(x, v) ((x) = (v))
#define IS_ENABLED(x) 0
#define EXPORT_SYMBOL(x)
#define EXPORT_SYMBOL_GPL(x)
#define MODULE_LICENSE(x)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define fallthrough do {} while (0)
static inline u16 ntohs(u16 x) { return (u16)((x >> 8) | (x << 8)); }
static inline u16 htons(u16 x) { return (u16)((x >> 8) | (x << 8)); }
extern unsigned long jiffies;
#define time_after(a, b) ((long)((b) - (a)) < 0)

enum { NF_DROP = 0, NF_ACCEPT = 1 };
enum { NF_INET_PRE_ROUTING = 0, NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING };
enum { PF_INET = 2, AF_INET = 2, PF_INET6 = 10, AF_INET6 = 10 };
enum { IPPROTO_UDP = 17, IPPROTO_UDPLITE = 136, IPPROTO_RAW = 255 };
enum ip_conntrack_info { IP_CT_ESTABLISHED, IP_CT_RELATED, IP_CT_NEW, IP_CT_IS_REPLY,
	IP_CT_ESTABLISHED_REPLY = IP_CT_ESTABLISHED + IP_CT_IS_REPLY };
enum ip_conntrack_status_bits { IPS_EXPECTED_BIT, IPS_SEEN_REPLY_BIT, IPS_ASSURED_BIT, IPS_CONFIRMED_BIT,
	IPS_SRC_NAT_BIT, IPS_DST_NAT_BIT, IPS_SEQ_ADJUST_BIT, IPS_SRC_NAT_DONE_BIT, IPS_DST_NAT_DONE_BIT,
	IPS_DYING_BIT, IPS_FIXED_TIMEOUT_BIT, IPS_TEMPLATE_BIT, IPS_UNTRACKED_BIT };
#define IPS_SEEN_REPLY (1UL << IPS_SEEN_REPLY_BIT)
#define IPS_ASSURED (1UL << IPS_ASSURED_BIT)
#define IPS_CONFIRMED (1UL << IPS_CONFIRMED_BIT)
#define IPS_NAT_CLASH_BIT IPS_UNTRACKED_BIT
#define IPS_NAT_CLASH (1UL << IPS_NAT_CLASH_BIT)
enum ip_conntrack_events { IPCT_NEW, IPCT_RELATED, IPCT_DESTROY, IPCT_REPLY, IPCT_ASSURED };
enum udp_conntrack { UDP_CT_UNREPLIED, UDP_CT_REPLIED, UDP_CT_MAX };

static inline int test_bit(int nr, const unsigned long *addr) { return (*addr >> nr) & 1; }
static inline int test_and_set_bit(int nr, unsigned long *addr)
{
	int old = (*addr >> nr) & 1;
	*addr |= 1UL << nr;
	return old;
}

struct udphdr { __be16 source, dest, len; __sum16 check; };
struct sk_buff { unsigned int len; unsigned char *data; };
static inline void *skb_header_pointer(const struct sk_buff *skb, int off, int len, void *buf)
{
	(void)buf;
	return off + len <= (int)skb->len ? skb->data + off : NULL;
}

struct nf_proto_net { unsigned int users; };
struct nf_udp_net { struct nf_proto_net pn; unsigned int timeouts[UDP_CT_MAX]; unsigned int offload_timeout; };
struct nf_ip_net { struct nf_udp_net udp; };
struct netns_ct { int sysctl_checksum; int sysctl_log_invalid; struct nf_ip_net nf_ct_proto; };
struct net { struct netns_ct ct; };
struct nf_hook_state { unsigned int hook; u8 pf; struct net *net; };
static inline struct nf_udp_net *nf_udp_pernet(struct net *net) { return &net->ct.nf_ct_proto.udp; }

struct nf_conntrack_tuple { struct { union { struct { __be16 port; } udp; } u; } src, dst; };
struct nf_conn {
	unsigned long status;
	u32 timeout;
	union { struct { unsigned long stream_ts; } udp; } proto;
};
struct nf_conntrack_l4proto {
	u16 l3proto; u8 l4proto; const char *name; bool allow_clash;
	void *pkt_to_tuple, *invert_tuple, *print_tuple, *packet, *get_timeouts, *new, *error;
	void *init_net, *get_net_proto;
};
static inline bool nf_ct_is_confirmed(const struct nf_conn *ct) { return test_bit(IPS_CONFIRMED_BIT, &ct->status); }
extern struct net kj_net;
static inline struct net *nf_ct_net(const struct nf_conn *ct) { (void)ct; return &kj_net; }
static inline unsigned int *nf_ct_timeout_lookup(const struct nf_conn *ct) { (void)ct; return NULL; }
static inline void nf_conntrack_event_cache(enum ip_conntrack_events e, struct nf_conn *ct) { (void)e; (void)ct; }
void kj_refresh(struct nf_conn *ct, unsigned long extended);
#define nf_ct_refresh_acct(ct, ctinfo, skb, extra) kj_refresh(ct, extra)
int kj_checksum_bad(void);
#define nf_checksum(skb, hook, off, proto, pf) kj_checksum_bad()
void kj_log(const char *fmt, ...);
/* 3.10: nf_log_packet() under LOG_INVALID(); 4.19/5.10: (skb, net, pf, proto, fmt, ...);
 * 5.15+: (skb, state, proto, fmt, ...).  The glue records the text after the format. */
#define LOG_INVALID(net, proto) ((net)->ct.sysctl_log_invalid == (proto) || (net)->ct.sysctl_log_invalid == IPPROTO_RAW)
#define nf_log_packet(net, pf, hooknum, skb, in, out, li, ...) kj_log(__VA_ARGS__)
#ifdef KUDP_LOG_STATE
#define nf_l4proto_log_invalid(skb, state, proto, ...) kj_log(__VA_ARGS__)
#else
#define nf_l4proto_log_invalid(skb, net, pf, proto, ...) kj_log(__VA_ARGS__)
#endif
struct seq_file;
int seq_printf(struct seq_file *m, const char *fmt, ...);
struct ctl_table;
static inline void nf_ct_kfree_compat_sysctl_table(struct nf_proto_net *pn) { (void)pn; }
#endif
