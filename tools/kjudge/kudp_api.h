/* kudp_api.h -- what kudp_driver.c sees of kudp_glue.c (the kernel unit). */
#include <stdint.h>
#define HZ 1000
#define IPS_SEEN_REPLY (1UL << 1)
#define IPS_CONFIRMED (1UL << 3)
#define IPS_NAT_CLASH (1UL << 12)
#define time_after(a, b) ((long)((b) - (a)) < 0)
enum { NF_INET_PRE_ROUTING = 0, NF_INET_LOCAL_OUT = 3 };
enum ip_conntrack_info { IP_CT_ESTABLISHED, IP_CT_RELATED, IP_CT_NEW, IP_CT_IS_REPLY,
	IP_CT_ESTABLISHED_REPLY = IP_CT_ESTABLISHED + IP_CT_IS_REPLY };
enum { UDP_CT_UNREPLIED, UDP_CT_REPLIED };
/* layout-independent view of the kernel's struct nf_conn (kudp_shim.h) */
struct nf_conn { unsigned long status; uint32_t timeout; union { struct { unsigned long stream_ts; } udp; } proto; };
struct sk_buff { unsigned int len; unsigned char *data; };
struct netns_ct_view { int sysctl_checksum; int sysctl_log_invalid; unsigned int users; unsigned int timeouts[2]; unsigned int offload; };
struct net { struct netns_ct_view ct; };
extern unsigned long jiffies;
extern struct net kj_net;
extern struct sk_buff kj_skb;
extern int kj_bad_csum;
extern char kj_logbuf[256];
extern long kj_refreshed;
void kj_init(void);
unsigned int *kj_timeouts(void);
int kj_error(unsigned int hook);
int kj_packet(struct nf_conn *ct, enum ip_conntrack_info ctinfo, unsigned int hook);
